//! Failed-login counters, kept in the database so every instance sees them.
//!
//! A key (`account:<email>` or `address:<ip>`) that collects `max_failures` failures within the
//! window is locked; each further failure after a lockout doubles the next one, up to an hour.
//! Attempts made while locked are refused without being counted, so nobody can keep an account
//! locked forever by hammering it.

use std::time::Duration;

use sqlx::Row;

use super::{Db, DbError};

/// Failures older than this (and not under a lockout) are forgotten.
const WINDOW_SECS: i64 = 15 * 60;
const MAX_LOCKOUT_SECS: i64 = 3600;

/// If `key` is locked at `now`, until when.
pub async fn locked_until(db: &Db, key: &str, now: i64) -> Result<Option<i64>, DbError> {
    let until: Option<i64> = sqlx::query_scalar("SELECT locked_until FROM login_throttle WHERE key = $1")
        .bind(key)
        .fetch_optional(db.reader())
        .await?;
    Ok(until.filter(|&u| u > now))
}

/// Counts one failure; returns the new lockout's end if this failure started one.
pub async fn record_failure(
    db: &Db,
    key: &str,
    max_failures: u32,
    base_lockout: Duration,
    now: i64,
) -> Result<Option<i64>, DbError> {
    let mut tx = db.begin().await?;
    let row = sqlx::query("SELECT failures, first_failure, locked_until FROM login_throttle WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
    let (failures, first_failure) = match row {
        Some(row) => {
            let failures: i64 = row.try_get("failures")?;
            let first: i64 = row.try_get("first_failure")?;
            let locked: i64 = row.try_get("locked_until")?;
            if now - first > WINDOW_SECS && locked <= now {
                (1, now)
            } else {
                (failures + 1, first)
            }
        }
        None => (1, now),
    };
    let max = i64::from(max_failures);
    let new_lock = (failures >= max).then(|| {
        let doublings = (failures - max).min(16) as u32;
        let secs = (base_lockout.as_secs() as i64)
            .saturating_mul(1 << doublings)
            .min(MAX_LOCKOUT_SECS);
        now + secs
    });
    sqlx::query(
        "INSERT INTO login_throttle (key, failures, first_failure, locked_until) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, first_failure = excluded.first_failure, \
         locked_until = excluded.locked_until",
    )
    .bind(key)
    .bind(failures)
    .bind(first_failure)
    .bind(new_lock.unwrap_or(0))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(new_lock)
}

/// Forgets the failures of `key` (after a successful login).
pub async fn clear(db: &Db, key: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(key)
        .execute(db.writer())
        .await?;
    Ok(())
}
