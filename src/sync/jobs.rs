//! Runs of the background jobs (backfill, reconciliation, drift) in table `jobs`: one of each kind
//! at a time, with a heartbeat so a run whose process died does not block the next one.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::{now_unix, Db, DbError};
use crate::domain::sync_report::JobRun;

/// A running job whose heartbeat is older than this is taken as dead.
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
    let now = now_unix();
    let mut tx = db.begin().await?;
    // A run that stopped beating died with its process.
    sqlx::query(
        "UPDATE jobs SET status = 'failed', finished_at = $1, error = 'the process running it stopped' \
         WHERE kind = $2 AND status = 'running' AND heartbeat_at < $3 AND account_id = $4",
    )
    .bind(now)
    .bind(kind.as_str())
    .bind(now - STALE_AFTER_SECS)
    .bind(account)
    .execute(&mut *tx)
    .await?;
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
        Ok(()) => Ok(Some(id)),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
        Err(e) => Err(e.into()),
    }
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
    sqlx::query(
        "UPDATE jobs SET status = $1, finished_at = $2, heartbeat_at = $2, summary = COALESCE($3, summary), error = $4 \
         WHERE id = $5",
    )
    .bind(status)
    .bind(now)
    .bind(summary)
    .bind(error)
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Records that a run stopped on request (status `stopped`: the next run resumes it).
pub async fn stopped(db: &Db, id: &str) -> Result<(), DbError> {
    let now = now_unix();
    sqlx::query("UPDATE jobs SET status = 'stopped', finished_at = $1, heartbeat_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(db.writer())
        .await?;
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
