//! Adding a Stripe account, the same from Settings and from `tally accounts add`: the key is
//! checked with Stripe (`GET /v1/account` says whose it is), then stored sealed with the
//! account's webhook signing secrets. Messages name what to fix and never repeat a secret.

use crate::config::{Config, StripeKey, StripeMode};
use crate::db::accounts::{self, AddError, NewDirect};
use crate::db::Db;
use crate::domain::accounts::{Account, AccountKind};

/// Why an account was not added; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum AddAccountError {
    #[error(
        "TALLY_SECRETS_KEY is not set: Tally stores an account's key sealed with it (64 hex characters; make one with \
         `openssl rand -hex 32` and keep it with your backups)"
    )]
    NoSecretsKey,
    #[error("The key {0}")]
    BadKey(String),
    #[error("Each webhook signing secret starts with whsec_ (one starts with {0:?}).")]
    BadWebhookSecret(String),
    #[error("Stripe did not accept the key: {0}")]
    Refused(String),
    #[error("Stripe's answer names no account (expected an id starting acct_).")]
    NoAccount,
    #[error("The name must have 1 to 100 characters.")]
    BadName,
    #[error("Account {0} is already known to Tally (rename or enable it instead).")]
    Exists(String),
    #[error("the database did not answer: {0}")]
    Db(crate::db::DbError),
}

/// What to add: the key and webhook secrets as typed (trimmed here), a name (empty: the
/// account's name at Stripe), and where the request came from (`settings`, `cli`).
pub struct AddAccount<'a> {
    pub secret_key: &'a str,
    pub name: Option<&'a str>,
    pub webhook_secrets: Vec<String>,
    pub source: &'a str,
}

pub async fn add(db: &Db, config: &Config, request: AddAccount<'_>) -> Result<Account, AddAccountError> {
    let seal = config.secrets_key.as_ref().ok_or(AddAccountError::NoSecretsKey)?;
    let key = StripeKey::parse(request.secret_key.trim()).map_err(AddAccountError::BadKey)?;
    let secrets: Vec<String> = request
        .webhook_secrets
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = secrets.iter().find(|s| !s.starts_with("whsec_")) {
        return Err(AddAccountError::BadWebhookSecret(bad.chars().take(6).collect()));
    }
    let name = request.name.map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 100) {
        return Err(AddAccountError::BadName);
    }
    let transport = crate::stripe::Transport::new(
        key.key.expose(),
        config.stripe_api_base.as_str(),
        2,
        config.stripe_retry.clone(),
        crate::stripe::Timeouts::default(),
    )
    .map_err(|e| AddAccountError::Refused(e.admin_message()))?;
    let answer = crate::stripe::ops::retrieve_account(&transport)
        .await
        .map_err(|e| AddAccountError::Refused(e.admin_message()))?;
    let id = answer
        .body
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    if !id.starts_with("acct_") || !crate::stripe::valid_id(&id) {
        return Err(AddAccountError::NoAccount);
    }
    let name = name
        .map(str::to_string)
        .or_else(|| crate::domain::accounts::display_name(&answer.body))
        .unwrap_or_else(|| id.clone());
    let added = accounts::add_direct(
        db,
        seal,
        &NewDirect {
            id: &id,
            name: &name,
            livemode: key.mode == StripeMode::Live,
            source: request.source,
            secret_key: key.key.expose(),
            webhook_secrets: &secrets,
            raw: &answer.body,
        },
    )
    .await;
    match added {
        Ok(()) => {}
        Err(AddError::Exists(id)) => return Err(AddAccountError::Exists(id)),
        Err(AddError::Db(e)) => return Err(AddAccountError::Db(e)),
    }
    accounts::get(db, &id)
        .await
        .map_err(AddAccountError::Db)?
        .ok_or(AddAccountError::NoAccount)
}

/// Why Tally cannot call Stripe for an account; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("No such account.")]
    Unknown,
    #[error("The account is disabled; enable it first.")]
    Disabled,
    #[error("STRIPE_SECRET_KEY is not set, and this account is reached with it.")]
    NoEnvironmentKey,
    #[error(
        "The account's key cannot be opened: TALLY_SECRETS_KEY is not set or is not the key it was \
         sealed with (add the account again with its key)."
    )]
    Sealed,
    #[error("{0}")]
    Stripe(String),
    #[error("the database did not answer: {0}")]
    Db(crate::db::DbError),
}

/// The environment's key, or the sealed key of the direct account `id`.
async fn key_of(db: &Db, config: &Config, id: Option<&str>) -> Result<String, ClientError> {
    let environment = || {
        config
            .stripe_key
            .as_ref()
            .map(|k| k.key.expose().to_string())
            .ok_or(ClientError::NoEnvironmentKey)
    };
    let Some(id) = id else {
        return environment();
    };
    match accounts::get(db, id).await.map_err(ClientError::Db)? {
        Some(a) if a.source == "environment" => environment(),
        Some(_) => {
            let seal = config.secrets_key.as_ref().ok_or(ClientError::Sealed)?;
            accounts::secret_key(db, seal, id)
                .await
                .map_err(ClientError::Db)?
                .ok_or(ClientError::Sealed)
        }
        None => Err(ClientError::Unknown),
    }
}

/// The clients made so far, one per account and what it is made of (key, API base, rate): every
/// call for an account shares its transport, so its requests share one rate-limit budget in this
/// process. A rotated key makes a new entry (the old one stays, unused: one per rotation).
type Clients = std::sync::Mutex<std::collections::HashMap<(String, u64), std::sync::Arc<crate::stripe::Transport>>>;
static CLIENTS: std::sync::OnceLock<Clients> = std::sync::OnceLock::new();

/// A Stripe client acting for account `id`, with its own request budget: a direct account's own
/// key (the environment's for the environment's account), or, for a connected account, its
/// platform's key with `Stripe-Account`. The same client for every call while the key is the
/// same (a new key makes a new one).
pub async fn client(
    db: &Db,
    config: &Config,
    id: &str,
) -> Result<std::sync::Arc<crate::stripe::Transport>, ClientError> {
    let account = accounts::get(db, id)
        .await
        .map_err(ClientError::Db)?
        .ok_or(ClientError::Unknown)?;
    if account.disabled {
        return Err(ClientError::Disabled);
    }
    let key = match account.kind {
        AccountKind::Direct => key_of(db, config, Some(&account.id)).await?,
        AccountKind::Connected => key_of(db, config, account.platform_id.as_deref()).await?,
    };
    // What the client is made of: a different key or base makes another client.
    let made_of = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            key.as_str(),
            config.stripe_api_base.as_str(),
            account.kind.as_str(),
            config.stripe_rate_limit,
        )
            .hash(&mut h);
        h.finish()
    };
    let clients = CLIENTS.get_or_init(Default::default);
    let entry = (id.to_string(), made_of);
    if let Some(client) = clients.lock().ok().and_then(|c| c.get(&entry).cloned()) {
        return Ok(client);
    }
    let transport = crate::stripe::Transport::new(
        &key,
        config.stripe_api_base.as_str(),
        config.stripe_rate_limit,
        config.stripe_retry.clone(),
        crate::stripe::Timeouts::default(),
    )
    .map_err(|e| ClientError::Stripe(e.admin_message()))?;
    let transport = match account.kind {
        AccountKind::Direct => transport,
        AccountKind::Connected => transport
            .on_behalf_of(&account.id)
            .map_err(|e| ClientError::Stripe(e.admin_message()))?,
    };
    let client = std::sync::Arc::new(transport);
    // Two first calls at once: both get the one that went in first.
    Ok(match clients.lock() {
        Ok(mut clients) => clients.entry(entry).or_insert(client).clone(),
        Err(_) => client,
    })
}

/// Asks Stripe about the account with the client Tally would use for it, and keeps what it says
/// (a connected account's name): whether Tally can act for that account now.
pub async fn check(db: &Db, config: &Config, id: &str) -> Result<String, ClientError> {
    let transport = client(db, config, id).await?;
    let answer = crate::stripe::ops::retrieve_account(transport.as_ref())
        .await
        .map_err(|e| ClientError::Stripe(format!("Stripe did not answer for {id}: {}", e.admin_message())))?;
    let answered = answer.body.get("id").and_then(|v| v.as_str()).unwrap_or_default();
    if answered != id {
        return Err(ClientError::Stripe(format!(
            "Stripe answered for another account ({answered}): the key belongs to another account than {id}."
        )));
    }
    if let Some(account) = accounts::get(db, id).await.map_err(ClientError::Db)? {
        if account.kind == AccountKind::Connected {
            let live = answer
                .body
                .get("livemode")
                .and_then(|v| v.as_bool())
                .or(account.livemode)
                .unwrap_or(false);
            accounts::register_connected(db, id, account.platform_id.as_deref(), live, Some(&answer.body))
                .await
                .map_err(ClientError::Db)?;
        }
    }
    Ok(format!("Tally can reach {id} at Stripe."))
}
