//! Instance-wide key/value settings (table `settings`).

use super::{now_unix, Db, DbError};

pub const INSTALLED_AT: &str = "installed_at";

pub async fn get(db: &Db, key: &str) -> Result<Option<String>, DbError> {
    Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(db.reader())
        .await?)
}

/// Sets `key` to `value`.
pub async fn set(db: &Db, key: &str, value: &str) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(key)
    .bind(value)
    .bind(now_unix())
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Remembers when this database was first set up (shown on the Settings page); later calls keep it.
pub async fn record_install_time(db: &Db) -> Result<(), DbError> {
    let now = now_unix();
    sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
        .bind(INSTALLED_AT)
        .bind(now.to_string())
        .bind(now)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// The value under `key`, created with `make` (and kept) when there is none. Safe when several
/// instances start at once: the first write wins and everyone reads it back.
pub async fn get_or_create(db: &Db, key: &str, make: impl FnOnce() -> String) -> Result<String, DbError> {
    if let Some(value) = get(db, key).await? {
        return Ok(value);
    }
    sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(make())
        .bind(now_unix())
        .execute(db.writer())
        .await?;
    Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_one(db.writer())
        .await?)
}
