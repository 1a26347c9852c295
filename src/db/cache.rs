//! Figures derived from the projection (overview, list totals, movement lists), cached until the
//! projection changes.
//!
//! Every transaction that writes the projection adds one to this process's row in `counters`
//! (`projection:<process id>`) just before it commits (`bump`); a reader sums those rows before it
//! computes (`generation`), so a cached value is never older than the sum it is stored under. One
//! row per process means instances on one Postgres never wait on each other's counter, and the
//! bump comes last so it holds that row's lock only for the commit. Counter `revenue_closed`
//! works the same way (one row per process), bumped by the projection itself when it writes
//! revenue of a closed month.
//!
//! Latency-bounded figures (`get_bounded`): a request waits at most a set time (FIGURES_WAIT_MS)
//! for figures being computed after a change; past that it gets the previous figures, if they
//! are at most `MAX_STALE_SECS` old, marked with the time they are from, while the computation
//! finishes in the background for the next request (it does not wait at all when the key's last
//! computation took longer than the wait; one computation per key runs at a time). Small accounts never notice (their figures
//! compute within the wait); a large account under steady webhook traffic gets answers at once,
//! a moment behind, instead of every request paying for a recomputation.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::{Db, DbError};

/// Grows with every committed change of the projection.
pub const PROJECTION: &str = "projection";
/// Grows when the projection writes a charge, refund or dispute created before the current
/// month: the revenue of closed months is cached until it does.
pub const REVENUE_CLOSED: &str = "revenue_closed";
/// Grows when the projection adds MRR history dated before the current month (movements of
/// closed months can only change then): their sums are cached until it does.
pub const MOVEMENTS_CLOSED: &str = "movements_closed";

/// This process's row of `counter`: `<counter>:<process id>`.
fn process_row(counter: &str) -> String {
    static PROCESS: OnceLock<String> = OnceLock::new();
    let process = PROCESS.get_or_init(|| uuid::Uuid::new_v4().simple().to_string());
    format!("{counter}:{process}")
}

/// Adds one to this process's row of `counter`, inside the caller's transaction.
pub async fn bump_counter(conn: &mut sqlx::AnyConnection, counter: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO counters (name, value) VALUES ($1, 1) \
         ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
    )
    .bind(process_row(counter))
    .execute(conn)
    .await?;
    Ok(())
}

/// The sum of every process's row of `counter` (a range of the primary key).
pub async fn counter(db: &Db, counter: &str) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(value), 0) AS BIGINT) FROM counters WHERE name > $1 AND name < $2",
        )
        // ':' < ';' in every collation: the rows `<counter>:…` and nothing else.
        .bind(format!("{counter}:"))
        .bind(format!("{counter};"))
        .fetch_one(db.reader())
        .await?,
    )
}

/// Records, inside the caller's transaction, that it changed the projection. Call it last,
/// right before committing.
pub async fn bump(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    bump_counter(conn, PROJECTION).await
}

/// The projection's generation: grows with every committed change, from any process.
pub async fn generation(db: &Db) -> Result<i64, DbError> {
    counter(db, PROJECTION).await
}

/// What a cached value was computed from: the projection's generation, or a caller's own stamp.
pub type Stamp = (i64, i64, i64);

struct Entry<T> {
    stamp: Stamp,
    /// Filled once; callers that arrive while it is being computed wait for that computation.
    cell: Arc<tokio::sync::OnceCell<Arc<T>>>,
}

type Entries<T> = Mutex<HashMap<String, Entry<T>>>;
/// Per key: the newest value computed, when its computation started (Unix seconds), and how
/// long it took.
type Latest<T> = Mutex<HashMap<String, (Arc<T>, i64, std::time::Duration)>>;

/// A cache of values computed from the projection, per database and key. Concurrent requests for
/// the same key and stamp share one computation (after a change, many viewers of a large account
/// would otherwise all compute the same overview at once).
pub struct Cached<T> {
    map: OnceLock<Entries<T>>,
    last: OnceLock<Latest<T>>,
    /// Keys with a bounded computation under way (at most one each, whatever its stamp).
    running: OnceLock<Mutex<std::collections::HashSet<String>>>,
}

/// Clears a key's "under way" mark when its computation ends, however it ends.
struct Running<'a> {
    set: &'a Mutex<std::collections::HashSet<String>>,
    key: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

/// The oldest previous figures `get_bounded` serves while new ones are computed.
pub const MAX_STALE_SECS: i64 = 10;

impl<T> Cached<T> {
    pub const fn new() -> Self {
        Self {
            map: OnceLock::new(),
            last: OnceLock::new(),
            running: OnceLock::new(),
        }
    }

    /// The value for `key`, computed again only if the projection changed since it was stored.
    pub async fn get<E, F, Fut>(&self, db: &Db, key: &str, compute: F) -> Result<Arc<T>, E>
    where
        E: From<DbError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let generation = generation(db).await?;
        self.get_stamped(db, key, (generation, 0, 0), compute).await
    }

    /// As `get`, for a value that depends on less than the whole projection: `stamp` (read before
    /// computing) describes the data it is computed from.
    pub async fn get_stamped<E, F, Fut>(&self, db: &Db, key: &str, stamp: Stamp, compute: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let key = format!("{}\u{1f}{key}", db.identity());
        let cell = {
            let mut map = self
                .map
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match map.get(&key) {
                Some(entry) if entry.stamp == stamp => entry.cell.clone(),
                _ => {
                    // Entries of older stamps are useless: drop them when the map grows.
                    if map.len() >= 256 {
                        map.retain(|_, entry| entry.stamp == stamp);
                        if map.len() >= 256 {
                            map.clear();
                        }
                    }
                    let cell = Arc::new(tokio::sync::OnceCell::new());
                    map.insert(
                        key,
                        Entry {
                            stamp,
                            cell: cell.clone(),
                        },
                    );
                    cell
                }
            }
        };
        // A failed computation leaves the cell empty: the next caller tries again.
        let value = cell
            .get_or_try_init(|| async move { compute().await.map(Arc::new) })
            .await?;
        Ok(value.clone())
    }
}

impl<T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync> Cached<T> {
    /// As `get_stamped`, and kept in the database across restarts (`persisted`, written at every
    /// new stamp: for figures whose stamp rarely moves).
    pub async fn get_persisted<E, F, Fut>(&self, db: &Db, key: &str, stamp: Stamp, compute: F) -> Result<Arc<T>, E>
    where
        E: From<DbError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_stamped(db, key, stamp, || persisted(db, key, stamp, Duration::ZERO, compute))
            .await
    }
}

/// How long a kept figure that nobody asked for again stays in `figure_cache`.
const KEEP_SECS: i64 = 7 * 86_400;

/// A figure kept in the database (table `figure_cache`) across restarts: read there when it was
/// stored under the same stamp (and by this release and schema), computed and stored otherwise.
/// For figures that are expensive to compute; the stamp must be made of counter sums, which
/// persist too. A figure is written at most once per `every` by a process (figures recomputed
/// after every change, like list totals under steady webhooks, would otherwise add a commit to
/// the single SQLite writer each time); a restart soon after a skipped write computes once.
/// Rows nobody refreshed for a week are removed in the same transaction as a write.
pub async fn persisted<T, E, F, Fut>(db: &Db, key: &str, stamp: Stamp, every: Duration, compute: F) -> Result<T, E>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
    E: From<DbError>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // A new release or schema may compute figures differently: neither reuses the other's.
    let stamp_text = format!(
        "{}/{}/{}:{}:{}",
        env!("CARGO_PKG_VERSION"),
        db.schema_version(),
        stamp.0,
        stamp.1,
        stamp.2
    );
    let stored: Option<(String, String)> = sqlx::query_as("SELECT stamp, value FROM figure_cache WHERE key = $1")
        .bind(key)
        .fetch_optional(db.reader())
        .await
        .map_err(DbError::from)?;
    if let Some(value) = stored
        .filter(|(stamp, _)| *stamp == stamp_text)
        .and_then(|(_, value)| serde_json::from_str::<T>(&value).ok())
    {
        return Ok(value);
    }
    let value = compute().await?;
    let now = std::time::Instant::now();
    let written_key = format!("{}\u{1f}{key}", db.identity());
    let due = {
        let mut written = WRITTEN
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if written.len() >= 1024 {
            written.retain(|_, at| now.duration_since(*at) < every.max(Duration::from_secs(60)));
        }
        match written.get(&written_key) {
            Some(at) if now.duration_since(*at) < every => false,
            _ => {
                written.insert(written_key, now);
                true
            }
        }
    };
    // Best effort: a failed write only means the next process computes again.
    if let (true, Ok(json)) = (due, serde_json::to_string(&value)) {
        if let Err(e) = keep(db, key, &stamp_text, &json).await {
            tracing::debug!(error = %e, key, "could not keep a computed figure");
        }
    }
    Ok(value)
}

/// Per figure (and database), when this process last wrote it.
static WRITTEN: OnceLock<Mutex<HashMap<String, std::time::Instant>>> = OnceLock::new();

/// Writes a figure and removes week-old ones, in one transaction (one commit on the writer).
async fn keep(db: &Db, key: &str, stamp: &str, json: &str) -> Result<(), DbError> {
    let now = super::now_unix();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO figure_cache (key, stamp, value, computed_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key) DO UPDATE SET stamp = excluded.stamp, value = excluded.value, \
         computed_at = excluded.computed_at",
    )
    .bind(key)
    .bind(stamp)
    .bind(json)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM figure_cache WHERE computed_at < $1")
        .bind(now - KEEP_SECS)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

impl<T> Cached<T> {
    /// How many requests are at the newest computation of `key` (waiting for it, or holding its
    /// value): what sharing one computation saves, and how a test sees requests meet.
    pub fn callers(&self, db: &Db, key: &str) -> usize {
        let key = format!("{}\u{1f}{key}", db.identity());
        self.map.get().map_or(0, |map| {
            map.lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .map_or(0, |entry| Arc::strong_count(&entry.cell) - 1)
        })
    }
}

impl<T: Send + Sync + 'static> Cached<T> {
    /// As `get` (with `extra` in the stamp: a value that also depends on, say, the minute), but a
    /// request waits at most `wait` for a computation: then it gets the previous value of the key
    /// if that is at most `MAX_STALE_SECS` old, with `Some(time it is from)`, and the computation
    /// goes on for later requests. `None`: the value is current.
    pub async fn get_bounded<F, Fut>(
        &'static self,
        db: &Db,
        key: &str,
        extra: i64,
        wait: std::time::Duration,
        compute: F,
    ) -> Result<(Arc<T>, Option<i64>), DbError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, DbError>> + Send + 'static,
    {
        let stamp = (generation(db).await?, extra, 0);
        let full_key = format!("{}\u{1f}{key}", db.identity());
        if let Some(value) = self.ready(&full_key, stamp) {
            return Ok((value, None));
        }
        // One computation per key at a time: under steady changes, requests would otherwise
        // start one per generation and pile them up.
        let running = self.running.get_or_init(Default::default);
        let claimed = running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(full_key.clone());
        if !claimed {
            let Some((value, at)) = self.previous(&full_key) else {
                // Nothing recent to show: compute (shared with any request for the same stamp).
                return Ok((self.get_stamped(db, key, stamp, compute).await?, None));
            };
            // The computation under way is for these very data: join it, within the same wait.
            if self.underway(&full_key, stamp) && !self.slower_than(&full_key, wait) {
                if let Ok(result) = tokio::time::timeout(wait, self.get_stamped(db, key, stamp, compute)).await {
                    return Ok((result?, None));
                }
            }
            return Ok((value, Some(at)));
        }
        let guard = Running {
            set: running,
            key: full_key.clone(),
        };
        let started = super::now_unix();
        let (db, key, remembered) = (db.clone(), key.to_string(), full_key.clone());
        // Spawned, so the computation finishes even when this request stops waiting for it.
        let mut task = tokio::spawn(async move {
            let _guard = guard;
            let clock = std::time::Instant::now();
            let value = self.get_stamped(&db, &key, stamp, compute).await?;
            self.remember(remembered, value.clone(), started, clock.elapsed());
            Ok::<_, DbError>(value)
        });
        // Waiting is worth it only if the last computation of this key fitted in the wait.
        let wait = if self.slower_than(&full_key, wait) && self.previous(&full_key).is_some() {
            std::time::Duration::ZERO
        } else {
            wait
        };
        let joined = match tokio::time::timeout(wait, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                if let Some((value, at)) = self.previous(&full_key) {
                    return Ok((value, Some(at)));
                }
                task.await
            }
        };
        let value = joined.map_err(|e| DbError::Query(sqlx::Error::Protocol(format!("computation failed: {e}"))))??;
        Ok((value, None))
    }

    /// The newest value of `full_key` if it is at most `MAX_STALE_SECS` old, and its time.
    fn previous(&self, full_key: &str) -> Option<(Arc<T>, i64)> {
        self.last
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(full_key)
            .filter(|(_, at, _)| super::now_unix() - at <= MAX_STALE_SECS)
            .map(|(value, at, _)| (value.clone(), *at))
    }

    /// Whether the newest computation of `full_key` took longer than `wait`.
    fn slower_than(&self, full_key: &str, wait: std::time::Duration) -> bool {
        self.last
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(full_key)
            .is_some_and(|(_, _, took)| *took > wait)
    }

    /// Whether a computation of `full_key` for `stamp` has started.
    fn underway(&self, full_key: &str, stamp: Stamp) -> bool {
        self.map.get().is_some_and(|map| {
            map.lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(full_key)
                .is_some_and(|entry| entry.stamp == stamp)
        })
    }

    /// The value stored under `full_key` for `stamp`, if it is computed.
    fn ready(&self, full_key: &str, stamp: Stamp) -> Option<Arc<T>> {
        let map = self.map.get()?.lock().unwrap_or_else(|p| p.into_inner());
        map.get(full_key)
            .filter(|entry| entry.stamp == stamp)
            .and_then(|entry| entry.cell.get().cloned())
    }

    /// Keeps `value` as the newest of `full_key` unless a later computation got there first.
    fn remember(&self, full_key: String, value: Arc<T>, started: i64, took: std::time::Duration) {
        let mut last = self
            .last
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.get(&full_key).is_none_or(|(_, at, _)| *at <= started) {
            if last.len() >= 256 {
                last.clear();
            }
            last.insert(full_key, (value, started, took));
        }
    }
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Self::new()
    }
}
