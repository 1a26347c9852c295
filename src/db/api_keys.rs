//! Keys for the payments API. Owners create them in Settings; the key is shown once and only its
//! SHA-256 is stored (the keys are long random strings, so a fast hash is enough); revoked keys
//! stop working at once.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{now_unix, Db, DbError};
use crate::domain::api_keys::ApiKey;

pub const KEY_PREFIX: &str = "tly_";

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Creates a key; returns its row and the key, which is never shown again.
pub async fn create(db: &Db, name: &str, created_by: &str) -> Result<(ApiKey, String), DbError> {
    let key = format!(
        "{KEY_PREFIX}{}{}",
        uuid::Uuid::new_v4().simple(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let row = ApiKey {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        prefix: key[..12].to_string(),
        created_by: created_by.to_string(),
        created_at: now_unix(),
        last_used_at: None,
        revoked_at: None,
    };
    sqlx::query(
        "INSERT INTO api_keys (id, name, prefix, key_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.prefix)
    .bind(digest(&key))
    .bind(&row.created_by)
    .bind(row.created_at)
    .execute(db.writer())
    .await?;
    Ok((row, key))
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

const COLUMNS: &str = "id, name, prefix, created_by, created_at, last_used_at, revoked_at";

pub async fn list(db: &Db) -> Result<Vec<ApiKey>, DbError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at DESC, id"))
        .fetch_all(db.reader())
        .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// Revokes a key; false when there is no such active key.
pub async fn revoke(db: &Db, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now_unix())
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The active key this secret belongs to, noting its use (at most once a minute).
pub async fn authenticate(db: &Db, key: &str) -> Result<Option<ApiKey>, DbError> {
    if !key.starts_with(KEY_PREFIX) || key.len() > 100 {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"
    ))
    .bind(digest(key))
    .fetch_optional(db.reader())
    .await?;
    let Some(row) = row.as_ref().map(from_row).transpose()? else {
        return Ok(None);
    };
    let now = now_unix();
    if row.last_used_at.is_none_or(|t| t < now - 60) {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&row.id)
            .execute(db.writer())
            .await?;
    }
    Ok(Some(row))
}
