//! Also, each round, applies the discounts that started or ended since the last one to MRR, and
//! folds the running sums the database appended since (revenue::sums).
//!
//! Fetches the objects the projection queued (`stripe_fetches`): a tie between events of the same
//! second whose versions differ, settled by Stripe's answer; an object whose embedded list Stripe
//! cut short (a subscription's items, an invoice's lines), completed from the API. Each object is
//! fetched once per queued second, through the Stripe boundary and its rate limit, and applied as
//! a fetched object (`Version::fetched`). Without a Stripe key the queue is dropped: the events'
//! own order stands, and incomplete rows stay marked as such.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;

use crate::db::{now_unix, Db, DbError};
use crate::domain::resource::Resource;
use crate::projection;
use crate::stripe::{ErrorKind, StripeApi};

/// Fetches tried before an object is left as the events had it.
const MAX_ATTEMPTS: i64 = 5;
/// Objects fetched per round.
const ROUND: i64 = 20;

/// Runs until the task is aborted.
pub async fn run(db: Db, stripe: Option<Arc<dyn StripeApi>>, config: Arc<crate::config::Config>) {
    loop {
        // Discounts that started or ended since the last round move MRR now (no event says so).
        if let Err(e) = projection::mrr_history::settle_due(&db).await {
            tracing::warn!(error = %e, "could not apply the discounts' starts and ends to MRR");
        }
        if let Err(e) = crate::revenue::sums::compact(&db).await {
            tracing::warn!(error = %e, "could not fold the running sums");
        }
        // Refunds Stripe did not confirm are settled with Stripe (never sent twice).
        if let Some(stripe) = stripe.as_deref() {
            if let Err(e) = crate::billing::refunds::settle_unknown(&db, stripe, crate::db::now_unix()).await {
                tracing::warn!(error = %e, "could not check refunds of unknown outcome");
            }
        }
        // Other accounts' objects, each through its account's client.
        let others = match drain_accounts(&db, &config).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the queue of other accounts' objects to fetch");
                0
            }
        };
        if let Err(e) = settle_accounts_refunds(&db, &config).await {
            tracing::warn!(error = %e, "could not check other accounts' refunds of unknown outcome");
        }
        match drain_once(&db, stripe.as_deref()).await {
            Ok(n) if n + others > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the queue of objects to fetch from Stripe"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Fetches and applies the environment's account's objects that are due; returns how many it
/// handled.
pub async fn drain_once(db: &Db, stripe: Option<&dyn StripeApi>) -> Result<usize, DbError> {
    drain_account(db, crate::domain::accounts::ENVIRONMENT, stripe).await
}

/// Fetches and applies other accounts' objects that are due, each account through its own client
/// (`accounts::client`: its key, or its platform's with `Stripe-Account`); returns how many.
pub async fn drain_accounts(db: &Db, config: &crate::config::Config) -> Result<usize, DbError> {
    let accounts: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT account_id FROM stripe_fetches WHERE due_at <= $1 AND account_id <> ''")
            .bind(now_unix())
            .fetch_all(db.reader())
            .await?;
    let mut handled = 0;
    for account in accounts {
        match crate::accounts::client(db, config, &account).await {
            Ok(client) => handled += drain_account(db, &account, Some(client.as_ref())).await?,
            // Without a client (account disabled, no secrets key) the queue is dropped: the
            // events' own order stands, as for the environment's account without a key.
            Err(e) => {
                tracing::info!(account = %account, error = %e, "no Stripe client for the account; its queued fetches are dropped");
                handled += drain_account(db, &account, None).await?;
            }
        }
    }
    Ok(handled)
}

/// Other accounts' refunds of unknown outcome, each settled with its account's client.
async fn settle_accounts_refunds(db: &Db, config: &crate::config::Config) -> Result<(), DbError> {
    let now = crate::db::now_unix();
    for account in crate::billing::refunds::accounts_to_settle(db, now).await? {
        match crate::accounts::client(db, config, &account).await {
            Ok(client) => {
                crate::billing::refunds::settle_unknown_of(db, &account, client.as_ref(), now).await?;
            }
            Err(e) => tracing::warn!(account = %account, error = %e, "no Stripe client to check the account's refunds"),
        }
    }
    Ok(())
}

async fn drain_account(db: &Db, account: &str, stripe: Option<&dyn StripeApi>) -> Result<usize, DbError> {
    let rows = sqlx::query(
        "SELECT object_id, at, resource, reason, attempts FROM stripe_fetches WHERE due_at <= $1 AND account_id = $2 \
         ORDER BY due_at LIMIT $3",
    )
    .bind(now_unix())
    .bind(account)
    .bind(ROUND)
    .fetch_all(db.reader())
    .await?;
    for row in &rows {
        let (id, at): (String, i64) = (row.try_get("object_id")?, row.try_get("at")?);
        let table: String = row.try_get("resource")?;
        let attempts: i64 = row.try_get("attempts")?;
        let (Some(stripe), Some(resource)) = (stripe, Resource::from_table(&table)) else {
            forget(db, &id, at).await?;
            continue;
        };
        match fetch_and_apply(db, account, stripe, resource, &id).await {
            Ok(()) => forget(db, &id, at).await?,
            Err(Failure::Gone) => {
                tracing::info!(object_id = %id, "queued object is gone at Stripe; the events' state stands");
                forget(db, &id, at).await?;
            }
            Err(Failure::Other(error)) if attempts + 1 >= MAX_ATTEMPTS => {
                tracing::warn!(object_id = %id, error = %error, "gave up fetching a queued object; the events' state stands");
                forget(db, &id, at).await?;
            }
            Err(Failure::Other(error)) => {
                sqlx::query(
                    "UPDATE stripe_fetches SET attempts = attempts + 1, due_at = $1, last_error = $2 \
                     WHERE object_id = $3 AND at = $4",
                )
                .bind(now_unix() + 5 * (1 << attempts.clamp(0, 10)))
                .bind(error)
                .bind(&id)
                .bind(at)
                .execute(db.writer())
                .await?;
            }
        }
    }
    Ok(rows.len())
}

enum Failure {
    Gone,
    Other(String),
}

async fn fetch_and_apply(
    db: &Db,
    account: &str,
    stripe: &dyn StripeApi,
    resource: Resource,
    id: &str,
) -> Result<(), Failure> {
    let requested_at = now_unix();
    let mut object = match stripe.retrieve(resource, id).await {
        Ok(object) => object,
        Err(e) if e.kind == ErrorKind::NotFound => return Err(Failure::Gone),
        Err(e) => return Err(Failure::Other(e.to_string())),
    };
    crate::stripe::complete_nested_lists(stripe, resource, &mut object)
        .await
        .map_err(|e| Failure::Other(e.to_string()))?;
    projection::apply_fetched(db, account, resource, &object, requested_at)
        .await
        .map_err(|e| Failure::Other(e.to_string()))?;
    tracing::info!(object_id = %id, resource = resource.table(), "applied an object fetched from Stripe");
    Ok(())
}

async fn forget(db: &Db, id: &str, at: i64) -> Result<(), DbError> {
    sqlx::query("DELETE FROM stripe_fetches WHERE object_id = $1 AND at = $2")
        .bind(id)
        .bind(at)
        .execute(db.writer())
        .await?;
    Ok(())
}
