//! Runs of the background jobs (backfill, reconciliation, drift) in table `jobs`: one of each kind
//! (and account) at a time. The process running one holds a lock (`live`) the system releases
//! when the process ends, so a run whose process was killed does not block the next one; where
//! no lock can be taken, a heartbeat older than two minutes tells.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::{now_unix, Db, DbError};
use crate::domain::sync_report::JobRun;

/// Where no live lock can be taken: a running job whose heartbeat is older than this is dead.
pub const STALE_AFTER_SECS: i64 = 120;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    Sync,
    Reconcile,
    Drift,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Sync => "sync",
            JobKind::Reconcile => "reconcile",
            JobKind::Drift => "drift",
        }
    }
}

/// Who started a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    Cli,
    Admin(String),
    Schedule,
}

/// Starts a run for the environment's account unless one of the same kind is already running
/// (then `Ok(None)`).
pub async fn start(db: &Db, kind: JobKind, trigger: &Trigger) -> Result<Option<String>, DbError> {
    start_for(db, kind, crate::domain::accounts::ENVIRONMENT, trigger).await
}

/// Starts a run for `account` unless one of the same kind is already running for it.
pub async fn start_for(db: &Db, kind: JobKind, account: &str, trigger: &Trigger) -> Result<Option<String>, DbError> {
    let lock = match super::live::try_lock(db, kind.as_str(), account).await? {
        // A live process runs one.
        super::live::Live::Busy => return Ok(None),
        super::live::Live::Got(lock) => Some(lock),
        super::live::Live::Unsupported => None,
    };
    let now = now_unix();
    let mut tx = db.begin().await?;
    // With the lock in hand, a run still marked running died with its process (killed, or the
    // machine stopped); without one, a run that stopped beating did.
    let stale_before = if lock.is_some() {
        i64::MAX
    } else {
        now - STALE_AFTER_SECS
    };
    mark_dead(&mut tx, kind, account, stale_before).await?;
    let running: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = $1 AND status = 'running' AND account_id = $2")
            .bind(kind.as_str())
            .bind(account)
            .fetch_one(&mut *tx)
            .await?;
    if running > 0 {
        return Ok(None);
    }
    let id = uuid::Uuid::new_v4().to_string();
    let (trigger_name, by) = match trigger {
        Trigger::Cli => ("cli", None),
        Trigger::Admin(email) => ("admin", Some(email.as_str())),
        Trigger::Schedule => ("schedule", None),
    };
    let inserted = sqlx::query(
        "INSERT INTO jobs (id, kind, status, trigger, requested_by, started_at, heartbeat_at, account_id) \
         VALUES ($1, $2, 'running', $3, $4, $5, $5, $6)",
    )
    .bind(&id)
    .bind(kind.as_str())
    .bind(trigger_name)
    .bind(by)
    .bind(now)
    .bind(account)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        // Another instance claimed the same kind between our check and insert (index
        // jobs_one_running): that run goes on, this one does not start.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    match tx.commit().await {
        Ok(()) => {
            if let Some(lock) = lock {
                super::live::keep(&id, lock);
            }
            Ok(Some(id))
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Marks `kind` runs of `account` still marked running with a heartbeat before `before` as
/// failed: their process ended.
async fn mark_dead(conn: &mut sqlx::AnyConnection, kind: JobKind, account: &str, before: i64) -> Result<(), DbError> {
    let error = match kind {
        JobKind::Sync => {
            "the process running it ended before it finished (killed or crashed); what it fetched is kept, and the \
             next sync resumes there"
        }
        _ => "the process running it ended before it finished (killed or crashed); run it again",
    };
    sqlx::query(
        "UPDATE jobs SET status = 'failed', finished_at = $1, error = $2 \
         WHERE kind = $3 AND status = 'running' AND heartbeat_at < $4 AND account_id = $5",
    )
    .bind(now_unix())
    .bind(error)
    .bind(kind.as_str())
    .bind(before)
    .bind(account)
    .execute(conn)
    .await?;
    Ok(())
}

/// A run shown as running whose process is gone (its live lock is free) is marked failed at
/// once, so the page tells the truth without waiting for the next start.
pub async fn reap_dead(db: &Db, kind: JobKind, account: &str) -> Result<(), DbError> {
    if let super::live::Live::Got(lock) = super::live::try_lock(db, kind.as_str(), account).await? {
        let mut conn = db.writer().acquire().await?;
        let marked = mark_dead(&mut conn, kind, account, i64::MAX).await;
        drop(conn);
        super::live::unlock(lock).await;
        marked?;
    }
    Ok(())
}

/// `reap_dead` for every kind shown as running for `account`.
pub async fn reap_all_dead(db: &Db, account: &str) -> Result<(), DbError> {
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT kind FROM jobs WHERE status = 'running' AND account_id = $1")
            .bind(account)
            .fetch_all(db.reader())
            .await?;
    for kind in [JobKind::Sync, JobKind::Reconcile, JobKind::Drift] {
        if kinds.iter().any(|k| k == kind.as_str()) {
            reap_dead(db, kind, account).await?;
        }
    }
    Ok(())
}

/// Whether an admin asked the run to stop (Settings → Stripe sync).
pub async fn stop_requested(db: &Db, id: &str) -> Result<bool, DbError> {
    let flag: Option<i64> = sqlx::query_scalar("SELECT stop_requested FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    Ok(flag.unwrap_or(0) != 0)
}

/// Asks the running `kind` job of `account` to stop; whichever process runs it sees the flag
/// within seconds. False when none is running.
pub async fn request_stop(db: &Db, kind: JobKind, account: &str) -> Result<bool, DbError> {
    let done =
        sqlx::query("UPDATE jobs SET stop_requested = 1 WHERE kind = $1 AND account_id = $2 AND status = 'running'")
            .bind(kind.as_str())
            .bind(account)
            .execute(db.writer())
            .await?;
    Ok(done.rows_affected() > 0)
}

/// Keeps a running job alive, and records its progress so far.
pub async fn beat(db: &Db, id: &str, summary: Option<&str>) -> Result<(), DbError> {
    sqlx::query("UPDATE jobs SET heartbeat_at = $1, summary = COALESCE($2, summary) WHERE id = $3")
        .bind(now_unix())
        .bind(summary)
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Ends a run with its summary (JSON) or error.
pub async fn finish(db: &Db, id: &str, outcome: Result<(&str, bool), &str>) -> Result<(), DbError> {
    let now = now_unix();
    // `partial`: finished, with types the key may not read skipped.
    let (status, summary, error) = match outcome {
        Ok((summary, false)) => ("done", Some(summary), None),
        Ok((summary, true)) => ("partial", Some(summary), None),
        Err(error) => ("failed", None, Some(error)),
    };
    let updated = sqlx::query(
        "UPDATE jobs SET status = $1, finished_at = $2, heartbeat_at = $2, summary = COALESCE($3, summary), error = $4 \
         WHERE id = $5",
    )
    .bind(status)
    .bind(now)
    .bind(summary)
    .bind(error)
    .bind(id)
    .execute(db.writer())
    .await;
    // Recorded or not, this process no longer runs it.
    super::live::release(id).await;
    updated?;
    Ok(())
}

/// Records that a run stopped on request (status `stopped`: the next run resumes it).
pub async fn stopped(db: &Db, id: &str) -> Result<(), DbError> {
    let now = now_unix();
    let updated = sqlx::query("UPDATE jobs SET status = 'stopped', finished_at = $1, heartbeat_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(db.writer())
        .await;
    // Recorded or not, this process no longer runs it.
    super::live::release(id).await;
    updated?;
    Ok(())
}

/// The latest runs of a kind for the environment's account, newest first.
pub async fn latest(db: &Db, kind: JobKind, limit: i64) -> Result<Vec<JobRun>, DbError> {
    latest_for(db, kind, crate::domain::accounts::ENVIRONMENT, limit).await
}

/// The latest runs of a kind for `account`, newest first.
pub async fn latest_for(db: &Db, kind: JobKind, account: &str, limit: i64) -> Result<Vec<JobRun>, DbError> {
    let rows = sqlx::query(
        "SELECT id, status, trigger, requested_by, started_at, finished_at, summary, error FROM jobs \
         WHERE kind = $1 AND account_id = $3 ORDER BY started_at DESC, id DESC LIMIT $2",
    )
    .bind(kind.as_str())
    .bind(limit)
    .bind(account)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(JobRun {
                id: r.try_get("id")?,
                status: r.try_get("status")?,
                trigger: r.try_get("trigger")?,
                requested_by: r.try_get("requested_by")?,
                started_at: r.try_get("started_at")?,
                finished_at: r.try_get("finished_at")?,
                summary: r.try_get("summary")?,
                error: r.try_get("error")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::Query)
}
