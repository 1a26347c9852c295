//! Admin accounts (table `admins`).

use sqlx::Row;

use super::{now_unix, Db, DbError};
use crate::domain::admins::Role;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminRow {
    pub id: i64,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
    /// When an owner last reset the password (Unix ms): sessions from before it are over.
    pub password_reset_ms: i64,
}

/// An admin together with the stored password hash; never leaves the server.
pub struct AdminCredentials {
    pub admin: AdminRow,
    pub password_hash: String,
}

const COLUMNS: &str = "id, email, role, disabled, created_at, last_login_at, password_reset_ms";

fn from_row(row: &sqlx::any::AnyRow) -> Result<AdminRow, DbError> {
    let role: String = row.try_get("role")?;
    Ok(AdminRow {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
        last_login_at: row.try_get("last_login_at")?,
        password_reset_ms: row.try_get("password_reset_ms")?,
    })
}

/// Why a password hash changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordChange {
    /// An owner set a new password (at this time, Unix ms).
    Reset { at_ms: i64 },
    /// The same password, hashed with stronger parameters at login.
    Upgrade,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminChangeError {
    #[error("An admin with this email already exists.")]
    EmailTaken,
    #[error("No such admin.")]
    NotFound,
    #[error("Tally needs at least one active owner: make someone else an owner first.")]
    LastOwner,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for AdminChangeError {
    fn from(e: sqlx::Error) -> Self {
        AdminChangeError::Db(DbError::Query(e))
    }
}

pub async fn count(db: &Db) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM admins")
        .fetch_one(db.reader())
        .await?)
}

pub async fn list(db: &Db) -> Result<Vec<AdminRow>, DbError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM admins ORDER BY email"))
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn find(db: &Db, id: i64) -> Result<Option<AdminRow>, DbError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM admins WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn credentials_by_email(db: &Db, email: &str) -> Result<Option<AdminCredentials>, DbError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS}, password_hash FROM admins WHERE email = $1"))
        .bind(email)
        .fetch_optional(db.reader())
        .await?;
    match row {
        Some(row) => Ok(Some(AdminCredentials {
            admin: from_row(&row)?,
            password_hash: row.try_get("password_hash")?,
        })),
        None => Ok(None),
    }
}

/// Creates an admin; `email` must already be normalized and `password_hash` computed.
pub async fn create(db: &Db, email: &str, password_hash: &str, role: Role) -> Result<i64, AdminChangeError> {
    let now = now_unix();
    let result = sqlx::query_scalar(
        "INSERT INTO admins (email, password_hash, role, disabled, created_at, updated_at) \
         VALUES ($1, $2, $3, 0, $4, $4) ON CONFLICT (email) DO NOTHING RETURNING id",
    )
    .bind(email)
    .bind(password_hash)
    .bind(role.as_str())
    .bind(now)
    .fetch_optional(db.writer())
    .await?;
    result.ok_or(AdminChangeError::EmailTaken)
}

/// Stores a new password hash. A reset (`Change::Reset`) also ends the admin's sessions that
/// began before `at_ms`; an upgrade of the same password's hash at login does not.
pub async fn set_password_hash(
    db: &Db,
    id: i64,
    password_hash: &str,
    change: PasswordChange,
) -> Result<(), AdminChangeError> {
    let reset_ms = match change {
        PasswordChange::Reset { at_ms } => Some(at_ms),
        PasswordChange::Upgrade => None,
    };
    let done = sqlx::query(
        "UPDATE admins SET password_hash = $1, updated_at = $2, password_reset_ms = COALESCE($3, password_reset_ms) \
         WHERE id = $4",
    )
    .bind(password_hash)
    .bind(now_unix())
    .bind(reset_ms)
    .bind(id)
    .execute(db.writer())
    .await?;
    if done.rows_affected() == 0 {
        return Err(AdminChangeError::NotFound);
    }
    Ok(())
}

pub async fn record_login(db: &Db, id: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE admins SET last_login_at = $1 WHERE id = $2")
        .bind(now_unix())
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Changes an admin's role and/or disabled flag, refusing to leave no active owner. The check and
/// the change happen in one transaction, one change of access at a time (SQLite's single writer;
/// a lock on Postgres, where two transactions would otherwise each count the other as the owner
/// that stays), so two owners demoting each other at once cannot both succeed.
pub async fn update_access(
    db: &Db,
    id: i64,
    role: Option<Role>,
    disabled: Option<bool>,
) -> Result<AdminRow, AdminChangeError> {
    let mut tx = db.begin().await?;
    let changed = change_access(&mut tx, id, role, disabled).await;
    match changed {
        Ok(row) => {
            tx.commit().await?;
            Ok(row)
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e)
        }
    }
}

async fn change_access(
    tx: &mut sqlx::AnyConnection,
    id: i64,
    role: Option<Role>,
    disabled: Option<bool>,
) -> Result<AdminRow, AdminChangeError> {
    if !tx.backend_name().eq_ignore_ascii_case("sqlite") {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('tally:admins:access', 0))")
            .execute(&mut *tx)
            .await?;
    }
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM admins WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(AdminChangeError::NotFound)?;
    let current = from_row(&row)?;
    let new_role = role.unwrap_or(current.role);
    let new_disabled = disabled.unwrap_or(current.disabled);
    let was_active_owner = current.role == Role::Owner && !current.disabled;
    let stays_active_owner = new_role == Role::Owner && !new_disabled;
    if was_active_owner && !stays_active_owner {
        let other_owners: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM admins WHERE role = 'owner' AND disabled = 0 AND id <> $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if other_owners == 0 {
            return Err(AdminChangeError::LastOwner);
        }
    }
    sqlx::query("UPDATE admins SET role = $1, disabled = $2, updated_at = $3 WHERE id = $4")
        .bind(new_role.as_str())
        .bind(i64::from(new_disabled))
        .bind(now_unix())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(AdminRow {
        role: new_role,
        disabled: new_disabled,
        ..current
    })
}
