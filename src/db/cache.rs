//! Figures derived from the projection (overview, list totals, movement lists), cached until the
//! projection changes.
//!
//! Every transaction that writes the projection adds one to this process's row in `counters`
//! (`projection:<process id>`) just before it commits (`bump`); a reader sums those rows before it
//! computes (`generation`), so a cached value is never older than the sum it is stored under. One
//! row per process means instances on one Postgres never wait on each other's counter, and the
//! bump comes last so it holds that row's lock only for the commit.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use super::{Db, DbError};

const PREFIX: &str = "projection:";

fn process_counter() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("{PREFIX}{}", uuid::Uuid::new_v4().simple()))
}

/// Records, inside the caller's transaction, that it changed the projection. Call it last,
/// right before committing.
pub async fn bump(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO counters (name, value) VALUES ($1, 1) \
         ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
    )
    .bind(process_counter())
    .execute(conn)
    .await?;
    Ok(())
}

/// The projection's generation: grows with every committed change, from any process.
pub async fn generation(db: &Db) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(value), 0) AS BIGINT) FROM counters WHERE name LIKE 'projection:%'",
    )
    .fetch_one(db.reader())
    .await?)
}

type Entries<T> = Mutex<HashMap<String, (i64, Arc<T>)>>;

/// A cache of values computed from the projection, per database and key.
pub struct Cached<T> {
    map: OnceLock<Entries<T>>,
}

impl<T> Cached<T> {
    pub const fn new() -> Self {
        Self { map: OnceLock::new() }
    }

    /// The value for `key`, computed again only if the projection changed since it was stored.
    pub async fn get<E, F, Fut>(&self, db: &Db, key: &str, compute: F) -> Result<Arc<T>, E>
    where
        E: From<DbError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let generation = generation(db).await?;
        let key = format!("{}\u{1f}{key}", db.identity());
        let map = self.map.get_or_init(Default::default);
        if let Some((stored, value)) = map.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            if *stored == generation {
                return Ok(value.clone());
            }
        }
        let value = Arc::new(compute().await?);
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        // Entries of older generations are useless: drop them when the map grows.
        if map.len() >= 256 {
            map.retain(|_, (stored, _)| *stored == generation);
            if map.len() >= 256 {
                map.clear();
            }
        }
        map.insert(key, (generation, value.clone()));
        Ok(value)
    }
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Self::new()
    }
}
