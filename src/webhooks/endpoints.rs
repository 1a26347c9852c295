//! The webhook signing secrets of the accounts added in Settings or with `tally accounts add`
//! (the environment's own, `STRIPE_WEBHOOK_SECRET`, stay in the configuration). Read from the
//! database and opened with `TALLY_SECRETS_KEY` at most every few seconds: a delivery that the
//! environment's secrets do not verify is checked against them, and filed under the account whose
//! secret verifies it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Secret;
use crate::db::Db;
use crate::seal::SealKey;

/// How long opened secrets are reused before the table is read again (an account added from the
/// command line, in another process, verifies deliveries after at most this long).
const FRESH_FOR: Duration = Duration::from_secs(5);

type Secrets = Arc<Vec<(String, Vec<Secret>)>>;

#[derive(Debug)]
pub struct AccountSecrets {
    db: Db,
    key: Option<SealKey>,
    cached: tokio::sync::Mutex<Option<(Instant, Secrets)>>,
    /// Connected accounts this process has registered: their next events need no write.
    registered: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl AccountSecrets {
    pub fn new(db: Db, key: Option<SealKey>) -> Self {
        AccountSecrets {
            db,
            key,
            cached: tokio::sync::Mutex::new(None),
            registered: Default::default(),
        }
    }

    /// (account id, its secrets) of every enabled direct account with secrets; empty without
    /// `TALLY_SECRETS_KEY`. A database fault is an error (the delivery gets a 503 and is retried).
    pub async fn current(&self) -> Result<Secrets, crate::db::DbError> {
        let Some(key) = &self.key else {
            return Ok(Arc::default());
        };
        let mut cached = self.cached.lock().await;
        if let Some((at, secrets)) = cached.as_ref() {
            if at.elapsed() < FRESH_FOR {
                return Ok(secrets.clone());
            }
        }
        let opened = crate::db::accounts::webhook_secrets(&self.db, key).await?;
        let secrets: Secrets = Arc::new(
            opened
                .into_iter()
                .map(|(id, list)| (id, list.into_iter().map(|s| Secret::new(&s)).collect()))
                .collect(),
        );
        *cached = Some((Instant::now(), secrets.clone()));
        Ok(secrets)
    }

    /// Registers a connected account the first time this process sees one of its events, and
    /// whenever its `account.updated` arrives (`object`: the account); other events of a known
    /// account cost no write.
    pub async fn register_connected(
        &self,
        account: &str,
        platform: Option<&str>,
        livemode: bool,
        object: Option<&serde_json::Value>,
    ) -> Result<(), crate::db::DbError> {
        let known = self
            .registered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(account);
        if known && object.is_none() {
            return Ok(());
        }
        crate::db::accounts::register_connected(&self.db, account, platform, livemode, object).await?;
        let mut registered = self.registered.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if registered.len() > 100_000 {
            registered.clear();
        }
        registered.insert(account.to_string());
        Ok(())
    }

    /// Forgets the cached secrets (an account was added, changed or disabled in this process).
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }
}
