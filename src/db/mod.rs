//! The database: one binary, SQLite or Postgres chosen by `DATABASE_URL` at run time.
//!
//! Query code is written once against sqlx's `Any` driver with portable SQL (`$1` placeholders,
//! integers for money and Unix-second times, TEXT for raw JSON); see docs/architecture.md.
//! SQLite gets one writer connection so concurrent requests queue instead of failing with
//! SQLITE_BUSY, and a pool of readers that WAL lets run beside it.

pub mod accounts;
pub mod admins;
pub mod api_keys;
pub mod audit;
pub mod cache;
pub mod customers;
pub mod events;
pub mod payments;
pub mod pricing;
pub mod settings;
pub mod throttle;

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Executor, Transaction};

use crate::config::{Backend, DatabaseUrl, SqliteSync};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long start-up waits for the database before giving up with a clear message.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a SQLite connection waits for a lock held by another process before failing.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the directory {path} for the SQLite database: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("cannot connect to the database at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

/// Placeholders of a generated statement with many parameters, in bind order: `?` on SQLite,
/// `$1`, `$2`, ... on Postgres. sqlx finds each named SQLite parameter (`$n`) by scanning the
/// statement's list of names, so hundreds of them cost quadratic time; plain `?` are found
/// directly. A statement uses one kind only (sqlx numbers plain `?` apart from named ones).
pub struct Params {
    sqlite: bool,
    n: usize,
}

impl Params {
    pub fn new(conn: &sqlx::AnyConnection) -> Self {
        Self {
            sqlite: conn.backend_name().eq_ignore_ascii_case("sqlite"),
            n: 0,
        }
    }

    /// The next parameter's placeholder.
    pub fn one(&mut self) -> String {
        self.n += 1;
        if self.sqlite {
            "?".to_string()
        } else {
            format!("${}", self.n)
        }
    }

    /// `count` placeholders separated by commas.
    pub fn list(&mut self, count: usize) -> String {
        (0..count).map(|_| self.one()).collect::<Vec<_>>().join(", ")
    }
}

/// Rows per multi-row statement: 16 on SQLite (several small statements in one transaction were
/// faster than one large one, measured at 16 and 64 rows with `db::Params`' plain placeholders),
/// 256 on Postgres (one round trip).
pub fn rows_per_statement(conn: &sqlx::AnyConnection) -> usize {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        16
    } else {
        256
    }
}

/// The current time as Unix seconds, the unit every table uses.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Handles to the database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    backend: Backend,
    read: AnyPool,
    write: AnyPool,
    /// Which database this is (its redacted URL), for per-database caches.
    identity: std::sync::Arc<str>,
    /// The SQLite database's file (none in memory and on Postgres).
    file: Option<std::sync::Arc<std::path::Path>>,
}

/// What `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    pub database: bool,
    pub migrations_applied: i64,
    pub migrations_expected: i64,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.database && self.migrations_applied >= self.migrations_expected
    }
}

impl Db {
    /// Connects with durable commits (`SqliteSync::Full` on SQLite).
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, DbError> {
        Self::connect_with(url, SqliteSync::Full).await
    }

    pub async fn connect_with(url: &DatabaseUrl, sync: SqliteSync) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let connect_err = |source| DbError::Connect {
            url: url.redacted(),
            source,
        };
        match url.backend() {
            Backend::Sqlite => {
                if let Some(dir) = url
                    .sqlite_file()
                    .and_then(|f| f.parent())
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                // The writer walks the inbox and the projection's indexes all day: 4 MiB of page
                // cache. Four readers (two cores do not run more queries at once anyway) with
                // 1 MiB each: their scans are served by the OS's file cache, and every private
                // cache counts in the server's memory.
                let write = sqlite_pool(1, 4096, sync)
                    .connect(url.expose())
                    .await
                    .map_err(connect_err)?;
                // Readers never commit: their setting does not matter.
                let read = sqlite_pool(4, 1024, SqliteSync::Normal)
                    .connect(url.expose())
                    .await
                    .map_err(connect_err)?;
                Ok(Self {
                    backend: Backend::Sqlite,
                    read,
                    write,
                    identity: url.redacted().into(),
                    file: url.sqlite_file().map(|f| f.as_path().into()),
                })
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect(url.expose())
                    .await
                    .map_err(connect_err)?;
                Ok(Self {
                    backend: Backend::Postgres,
                    read: pool.clone(),
                    write: pool,
                    identity: url.redacted().into(),
                    file: None,
                })
            }
        }
    }

    /// The database's redacted URL: the same for every handle to one database.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite database's file, when it has one.
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// For queries that only read.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// For statements that write; on SQLite these queue on the single writer connection.
    pub fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// A write transaction.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, DbError> {
        Ok(self.write.begin().await?)
    }

    /// The newest migration this binary carries (its version number).
    pub fn schema_version(&self) -> i64 {
        self.migrator().iter().map(|m| m.version).max().unwrap_or(0)
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations. On Postgres, sqlx holds an advisory lock meanwhile, so several
    /// instances starting together apply each migration once.
    pub async fn migrate(&self) -> Result<(), DbError> {
        self.migrator().run(&self.write).await?;
        settings::record_install_time(self).await?;
        Ok(())
    }

    pub async fn readiness(&self) -> Readiness {
        let expected = self
            .migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count() as i64;
        let ping = sqlx::query("SELECT 1").execute(&self.read).await.is_ok();
        let applied: Option<i64> = if ping {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.read)
                .await
                .ok()
        } else {
            None
        };
        Readiness {
            database: ping,
            migrations_applied: applied.unwrap_or(0),
            migrations_expected: expected,
        }
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// A pool of SQLite connections, each with `cache_kib` KiB of page cache.
fn sqlite_pool(max_connections: u32, cache_kib: u32, sync: SqliteSync) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                sqlite_settings(conn, sync).await?;
                conn.execute(format!("PRAGMA cache_size = -{cache_kib}").as_str())
                    .await?;
                Ok(())
            })
        })
}

async fn sqlite_settings(conn: &mut sqlx::AnyConnection, sync: SqliteSync) -> Result<(), sqlx::Error> {
    // WAL lets readers run beside the writer; see SqliteSync for what each setting risks.
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.execute(sync.pragma()).await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute(format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").as_str())
        .await?;
    Ok(())
}
