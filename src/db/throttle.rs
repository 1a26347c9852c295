//! Failed-login counters, kept in the database so every instance sees them.
//!
//! Keys: `account:<hash of the typed email>` (guesses at one account from browsers it never
//! signed in from), `device:<nonce>` (guesses from one browser holding a device cookie of the
//! account) and `address:<ip>` (guesses from one client address, at any account). Keys are
//! hashes or short tokens: what a visitor types never becomes a key of its own length.
//!
//! An attempt is counted *before* its password is checked (`reserve`, one atomic statement), so
//! concurrent attempts are counted exactly and a burst of parallel guesses gets no more checks
//! than the limit: the attempt that goes past the limit is refused unchecked. A success forgets
//! the count. A key that collects `max_failures` failures within the window is locked; each
//! further failure after a lockout doubles the next one, up to an hour.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Db, DbError};

/// Failures older than this (and not under a lockout) are forgotten.
pub const WINDOW_SECS: i64 = 15 * 60;
const MAX_LOCKOUT_SECS: i64 = 3600;

/// The key of an account, from what was typed in the email field (normalised when it is an
/// email; anything else is hashed as typed, at most its first kilobyte).
pub fn account_key(typed: &str) -> String {
    let normal = crate::domain::admins::normalize_email(typed)
        .unwrap_or_else(|_| typed.trim().chars().take(1024).collect::<String>().to_lowercase());
    format!("account:{}", hex::encode(Sha256::digest(normal.as_bytes())))
}

pub fn device_key(nonce: &str) -> String {
    format!("device:{nonce}")
}

pub fn address_key(addr: &str) -> String {
    format!("address:{addr}")
}

/// If `key` is locked at `now`, until when.
pub async fn locked_until(db: &Db, key: &str, now: i64) -> Result<Option<i64>, DbError> {
    let until: Option<i64> = sqlx::query_scalar("SELECT locked_until FROM login_throttle WHERE key = $1")
        .bind(key)
        .fetch_optional(db.reader())
        .await?;
    Ok(until.filter(|&u| u > now))
}

/// Failures of `key` within the window at `now`.
pub async fn failures(db: &Db, key: &str, now: i64) -> Result<i64, DbError> {
    let row = sqlx::query("SELECT failures, first_failure, locked_until FROM login_throttle WHERE key = $1")
        .bind(key)
        .fetch_optional(db.reader())
        .await?;
    Ok(match row {
        Some(r) => {
            let (failures, first, locked): (i64, i64, i64) = (
                r.try_get("failures")?,
                r.try_get("first_failure")?,
                r.try_get("locked_until")?,
            );
            if now - first > WINDOW_SECS && locked <= now {
                0
            } else {
                failures
            }
        }
        None => 0,
    })
}

/// Counts one attempt of `key` as a failure until it proves otherwise (`clear`), in one atomic
/// statement; returns the count including it, and how many attempts may be checked (`None`:
/// the configured limit; after a lockout, one more than were counted when it began).
pub async fn reserve(db: &Db, key: &str, now: i64) -> Result<(i64, Option<i64>), DbError> {
    let row = sqlx::query(
        "INSERT INTO login_throttle (key, failures, first_failure, locked_until) VALUES ($1, 1, $2, 0) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN $2 - login_throttle.first_failure > $3 AND login_throttle.locked_until <= $2 \
                      THEN 1 ELSE login_throttle.failures + 1 END, \
           allowed = CASE WHEN $2 - login_throttle.first_failure > $3 AND login_throttle.locked_until <= $2 \
                      THEN NULL ELSE login_throttle.allowed END, \
           first_failure = CASE WHEN $2 - login_throttle.first_failure > $3 AND login_throttle.locked_until <= $2 \
                      THEN $2 ELSE login_throttle.first_failure END \
         RETURNING failures, allowed",
    )
    .bind(key)
    .bind(now)
    .bind(WINDOW_SECS)
    .fetch_one(db.writer())
    .await?;
    Ok((row.try_get("failures")?, row.try_get("allowed")?))
}

/// Locks `key` after its `failures`-th failure when that reaches `max_failures`; returns until
/// when (a lockout only ever grows).
pub async fn lock_if_due(
    db: &Db,
    key: &str,
    failures: i64,
    max_failures: u32,
    base_lockout: Duration,
    now: i64,
) -> Result<Option<i64>, DbError> {
    let max = i64::from(max_failures);
    if failures < max {
        return Ok(None);
    }
    let doublings = (failures - max).min(16) as u32;
    let secs = (base_lockout.as_secs() as i64)
        .saturating_mul(1 << doublings)
        .min(MAX_LOCKOUT_SECS);
    let until = now + secs;
    sqlx::query(
        "UPDATE login_throttle SET locked_until = CASE WHEN locked_until > $1 THEN locked_until ELSE $1 END, \
         allowed = CASE WHEN allowed IS NULL OR allowed < $2 THEN $2 ELSE allowed END WHERE key = $3",
    )
    .bind(until)
    .bind(failures + 1)
    .bind(key)
    .execute(db.writer())
    .await?;
    Ok(Some(until))
}

/// Forgets the failures of `key` (after a successful login).
pub async fn clear(db: &Db, key: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(key)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Deletes counters that no longer count (outside the window and not locked); returns how many.
pub async fn delete_stale(db: &Db, now: i64) -> Result<u64, DbError> {
    let done = sqlx::query("DELETE FROM login_throttle WHERE locked_until <= $1 AND first_failure < $2")
        .bind(now)
        .bind(now - WINDOW_SECS)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected())
}
