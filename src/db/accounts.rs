//! The Stripe accounts Tally knows (table `stripe_accounts`). Secret keys and webhook signing
//! secrets are stored sealed (`seal`), bound to their row and column, and only opened on the
//! server when a call or a signature check needs them.

use sqlx::Row;

use super::{now_unix, Db, DbError};
use crate::domain::accounts::{Account, AccountKind};
use crate::seal::SealKey;

const COLUMNS: &str =
    "id, name, livemode, kind, source, platform_id, secret_key, webhook_secrets, disabled_at, created_at";

fn account(row: &sqlx::any::AnyRow) -> Result<Account, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let secrets: Option<String> = row.try_get("webhook_secrets")?;
    Ok(Account {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        livemode: row.try_get::<Option<i64>, _>("livemode")?.map(|m| m == 1),
        kind: AccountKind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown account kind {kind:?}").into()))?,
        source: row.try_get("source")?,
        platform_id: row.try_get("platform_id")?,
        webhook_secrets: secrets.map_or(0, |s| s.split(',').filter(|p| !p.is_empty()).count()),
        has_secret_key: row.try_get::<Option<String>, _>("secret_key")?.is_some(),
        disabled: row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
        created_at: row.try_get("created_at")?,
    })
}

/// Every account: direct ones first (the environment's first), then connected ones, by name.
pub async fn list(db: &Db) -> Result<Vec<Account>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM stripe_accounts \
         ORDER BY CASE kind WHEN 'direct' THEN 0 ELSE 1 END, CASE source WHEN 'environment' THEN 0 ELSE 1 END, name, id"
    );
    let rows = sqlx::query(&sql).fetch_all(db.reader()).await?;
    Ok(rows.iter().map(account).collect::<Result<_, _>>()?)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Account>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM stripe_accounts WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(db.reader()).await?;
    Ok(row.as_ref().map(account).transpose()?)
}

/// A direct account to add, with its secrets in clear (sealed before they are stored).
pub struct NewDirect<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub livemode: bool,
    pub source: &'a str,
    pub secret_key: &'a str,
    pub webhook_secrets: &'a [String],
    /// The account object Stripe returned.
    pub raw: &'a serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("account {0} is already known to Tally (rename or enable it instead)")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn seal_secrets(key: &SealKey, id: &str, secrets: &[String]) -> Option<String> {
    (!secrets.is_empty()).then(|| {
        secrets
            .iter()
            .enumerate()
            .map(|(i, s)| key.seal(s, &format!("{id}:webhook_secret:{i}")))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// Adds an account reached with its own key; refused when the account is already known.
pub async fn add_direct(db: &Db, key: &SealKey, new: &NewDirect<'_>) -> Result<(), AddError> {
    let now = now_unix();
    let done = sqlx::query(
        "INSERT INTO stripe_accounts (id, name, livemode, kind, source, platform_id, secret_key, webhook_secrets, raw, \
         disabled_at, created_at, updated_at) VALUES ($1, $2, $3, 'direct', $4, NULL, $5, $6, $7, NULL, $8, $8) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(new.id)
    .bind(new.name)
    .bind(i64::from(new.livemode))
    .bind(new.source)
    .bind(key.seal(new.secret_key, &format!("{}:secret_key", new.id)))
    .bind(seal_secrets(key, new.id, new.webhook_secrets))
    .bind(new.raw.to_string())
    .bind(now)
    .execute(db.writer())
    .await
    .map_err(DbError::from)?;
    if done.rows_affected() == 0 {
        return Err(AddError::Exists(new.id.to_string()));
    }
    Ok(())
}

/// Records the account of the environment's key (`STRIPE_SECRET_KEY`), whose secrets stay in the
/// environment; keeps a name an owner gave it.
pub async fn register_environment(db: &Db, raw: &serde_json::Value, livemode: bool) -> Result<Account, DbError> {
    let id = raw.get("id").and_then(|v| v.as_str()).unwrap_or_default();
    let name = crate::domain::accounts::display_name(raw).unwrap_or_else(|| id.to_string());
    let now = now_unix();
    sqlx::query(
        "INSERT INTO stripe_accounts (id, name, livemode, kind, source, platform_id, secret_key, webhook_secrets, raw, \
         disabled_at, created_at, updated_at) VALUES ($1, $2, $3, 'direct', 'environment', NULL, NULL, NULL, $4, NULL, $5, $5) \
         ON CONFLICT (id) DO UPDATE SET livemode = excluded.livemode, raw = excluded.raw, updated_at = excluded.updated_at, \
         name = CASE WHEN stripe_accounts.renamed = 1 THEN stripe_accounts.name ELSE excluded.name END",
    )
    .bind(id)
    .bind(&name)
    .bind(i64::from(livemode))
    .bind(raw.to_string())
    .bind(now)
    .execute(db.writer())
    .await?;
    get(db, id).await?.ok_or(DbError::Query(sqlx::Error::RowNotFound))
}

/// Registers a connected account the first time one of its events arrives (`platform_id`: the
/// account whose endpoint received it, `None` for the environment's), or brings it up to date
/// from an `account.updated` event (`object` is then the account itself).
pub async fn register_connected(
    db: &Db,
    id: &str,
    platform_id: Option<&str>,
    livemode: bool,
    object: Option<&serde_json::Value>,
) -> Result<(), DbError> {
    let now = now_unix();
    let name = object
        .and_then(crate::domain::accounts::display_name)
        .unwrap_or_else(|| id.to_string());
    let update = if object.is_some() {
        "DO UPDATE SET name = CASE WHEN stripe_accounts.renamed = 1 THEN stripe_accounts.name ELSE excluded.name END, \
         raw = excluded.raw, updated_at = excluded.updated_at"
    } else {
        "DO NOTHING"
    };
    let sql = format!(
        "INSERT INTO stripe_accounts (id, name, livemode, kind, source, platform_id, secret_key, webhook_secrets, raw, \
         disabled_at, created_at, updated_at) VALUES ($1, $2, $3, 'connected', 'connect', $4, NULL, NULL, $5, NULL, $6, $6) \
         ON CONFLICT (id) {update}"
    );
    sqlx::query(&sql)
        .bind(id)
        .bind(&name)
        .bind(i64::from(livemode))
        .bind(platform_id)
        .bind(object.map(|o| o.to_string()))
        .bind(now)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Renames an account (from then on its name at Stripe no longer replaces this one); `false` when
/// there is no such account.
pub async fn rename(db: &Db, id: &str, name: &str) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE stripe_accounts SET name = $1, renamed = 1, updated_at = $2 WHERE id = $3")
        .bind(name)
        .bind(now_unix())
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Disables (or enables again) an account: a disabled account's webhook secrets verify nothing.
pub async fn set_disabled(db: &Db, id: &str, disabled: bool) -> Result<bool, DbError> {
    let now = now_unix();
    let done = sqlx::query("UPDATE stripe_accounts SET disabled_at = $1, updated_at = $2 WHERE id = $3")
        .bind(disabled.then_some(now))
        .bind(now)
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The webhook signing secrets of every enabled direct account, opened: (account id, secrets).
/// A secret that does not open (another TALLY_SECRETS_KEY sealed it) is left out and logged by id.
pub async fn webhook_secrets(db: &Db, key: &SealKey) -> Result<Vec<(String, Vec<String>)>, DbError> {
    let rows = sqlx::query(
        "SELECT id, webhook_secrets FROM stripe_accounts \
         WHERE kind = 'direct' AND disabled_at IS NULL AND webhook_secrets IS NOT NULL ORDER BY id",
    )
    .fetch_all(db.reader())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get("id")?;
        let sealed: String = row.try_get("webhook_secrets")?;
        let mut secrets = Vec::new();
        for (i, s) in sealed.split(',').filter(|s| !s.is_empty()).enumerate() {
            match key.open(s, &format!("{id}:webhook_secret:{i}")) {
                Ok(secret) => secrets.push(secret),
                Err(e) => {
                    tracing::error!(account = %id, error = %e, "a webhook secret of this account cannot be opened")
                }
            }
        }
        out.push((id, secrets));
    }
    Ok(out)
}

/// An enabled direct account's secret key, opened.
pub async fn secret_key(db: &Db, key: &SealKey, id: &str) -> Result<Option<String>, DbError> {
    let sealed: Option<Option<String>> =
        sqlx::query_scalar("SELECT secret_key FROM stripe_accounts WHERE id = $1 AND disabled_at IS NULL")
            .bind(id)
            .fetch_optional(db.reader())
            .await?;
    Ok(sealed
        .flatten()
        .and_then(|s| match key.open(&s, &format!("{id}:secret_key")) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::error!(account = %id, error = %e, "the secret key of this account cannot be opened");
                None
            }
        }))
}

/// The `acct_…` of the environment's account, once registered.
pub async fn environment_id(db: &Db) -> Result<Option<String>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM stripe_accounts WHERE source = 'environment' ORDER BY created_at LIMIT 1")
            .fetch_optional(db.reader())
            .await?,
    )
}

/// The storage key (`account_id`) of account `id`: `''` for the environment's account.
pub async fn storage_key(db: &Db, id: &str) -> Result<Option<String>, DbError> {
    if id == crate::domain::accounts::ENVIRONMENT_PARAM {
        return Ok(Some(crate::domain::accounts::ENVIRONMENT.to_string()));
    }
    let source: Option<String> = sqlx::query_scalar("SELECT source FROM stripe_accounts WHERE id = $1")
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    Ok(source.map(|s| {
        if s == "environment" {
            crate::domain::accounts::ENVIRONMENT.to_string()
        } else {
            id.to_string()
        }
    }))
}

/// The account (`account_id`) of row `id` in projected table `table`, if the row exists.
pub async fn owner_of(db: &Db, table: &str, id: &str) -> Result<Option<String>, DbError> {
    Ok(
        sqlx::query_scalar(&format!("SELECT account_id FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_optional(db.reader())
            .await?,
    )
}

/// The accounts (storage keys) admin `admin_id` is limited to; empty: not limited.
pub async fn limits(db: &Db, admin_id: i64) -> Result<Vec<String>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT account_id FROM admin_accounts WHERE admin_id = $1 ORDER BY account_id")
            .bind(admin_id)
            .fetch_all(db.reader())
            .await?,
    )
}

/// Every limited admin's accounts (storage keys), by admin id, in one read.
pub async fn all_limits(db: &Db) -> Result<std::collections::HashMap<i64, Vec<String>>, DbError> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT admin_id, account_id FROM admin_accounts ORDER BY admin_id, account_id")
            .fetch_all(db.reader())
            .await?;
    let mut out: std::collections::HashMap<i64, Vec<String>> = Default::default();
    for (admin, account) in rows {
        out.entry(admin).or_default().push(account);
    }
    Ok(out)
}

/// Limits admin `admin_id` to `accounts` (storage keys; empty: every account).
pub async fn set_limits(db: &Db, admin_id: i64, accounts: &[String]) -> Result<(), DbError> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM admin_accounts WHERE admin_id = $1")
        .bind(admin_id)
        .execute(&mut *tx)
        .await?;
    for account in accounts {
        sqlx::query("INSERT INTO admin_accounts (admin_id, account_id) VALUES ($1, $2)")
            .bind(admin_id)
            .bind(account)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
