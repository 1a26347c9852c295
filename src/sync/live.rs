//! A lock held by the process running a job, for as long as it runs: the operating system (a file
//! lock next to the SQLite database) or the Postgres server (an advisory lock of a session kept
//! open) releases it the moment the process ends, however it ends. A `running` job whose lock is
//! free is dead at once, where a heartbeat would need minutes to tell.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::config::Backend;
use crate::db::{Db, DbError};

/// A held lock; dropping it releases it.
enum Held {
    File(#[allow(dead_code)] std::fs::File),
    Session { conn: sqlx::AnyConnection, key: i64 },
}

/// What trying the lock found.
pub enum Live {
    /// This process holds it now.
    Got(Lock),
    /// Another live process holds it.
    Busy,
    /// No lock can be taken here (no file to put one beside, or it cannot be created): the
    /// heartbeat decides.
    Unsupported,
}

pub struct Lock(Held);

/// Locks held by this process's running jobs, by job id.
fn held() -> &'static Mutex<HashMap<String, Lock>> {
    static HELD: OnceLock<Mutex<HashMap<String, Lock>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

/// The lock's name: the job's kind and account.
fn name(kind: &str, account: &str) -> String {
    let account: String = account
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if account.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}-{account}")
    }
}

/// FNV-1a: a stable 64-bit key for Postgres's advisory locks.
fn key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("tally-job:{name}").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// Tries to take the lock of `kind` jobs for `account`.
pub async fn try_lock(db: &Db, kind: &str, account: &str) -> Result<Live, DbError> {
    let name = name(kind, account);
    match db.backend() {
        Backend::Sqlite => {
            let Some(file) = db.sqlite_file() else {
                return Ok(Live::Unsupported);
            };
            let mut path = file.as_os_str().to_owned();
            path.push(format!(".{name}.lock"));
            let opened = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path);
            let file = match opened {
                Ok(file) => file,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create a job lock file; a dead run is noticed by its heartbeat");
                    return Ok(Live::Unsupported);
                }
            };
            match file.try_lock() {
                Ok(()) => Ok(Live::Got(Lock(Held::File(file)))),
                Err(std::fs::TryLockError::WouldBlock) => Ok(Live::Busy),
                Err(std::fs::TryLockError::Error(e)) => {
                    tracing::warn!(error = %e, "cannot lock the job lock file; a dead run is noticed by its heartbeat");
                    Ok(Live::Unsupported)
                }
            }
        }
        Backend::Postgres => {
            let mut conn = db.writer().acquire().await?;
            let key = key(&name);
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut *conn)
                .await?;
            if got {
                // The session holding it leaves the pool and stays open for as long as the run.
                Ok(Live::Got(Lock(Held::Session {
                    conn: conn.detach(),
                    key,
                })))
            } else {
                // Not held by this session: it goes back to the pool (the Settings page asks
                // every two seconds while a run goes on).
                Ok(Live::Busy)
            }
        }
    }
}

/// Keeps `lock` for job `id` until `release`.
pub fn keep(id: &str, lock: Lock) {
    if let Ok(mut held) = held().lock() {
        held.insert(id.to_string(), lock);
    }
}

/// Releases job `id`'s lock, if this process holds it.
pub async fn release(id: &str) {
    let lock = held().lock().ok().and_then(|mut held| held.remove(id));
    if let Some(lock) = lock {
        unlock(lock).await;
    }
}

/// Releases a lock.
pub async fn unlock(lock: Lock) {
    if let Lock(Held::Session { mut conn, key }) = lock {
        use sqlx::Connection;
        if let Err(e) = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .execute(&mut conn)
            .await
        {
            tracing::debug!(error = %e, "could not release a job lock (the session's end releases it)");
        }
        let _ = conn.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_are_per_kind_and_account() {
        assert_eq!(name("sync", ""), "sync");
        assert_eq!(name("sync", "acct_1Abc"), "sync-acct_1Abc");
        assert_eq!(name("sync", "acct/../x"), "sync-acctx");
        assert_ne!(key("sync"), key("drift"));
        assert_eq!(key("sync"), key("sync"));
    }
}
