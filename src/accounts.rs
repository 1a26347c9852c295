//! Adding a Stripe account, the same from Settings and from `tally accounts add`: the key is
//! checked with Stripe (`GET /v1/account` says whose it is), then stored sealed with the
//! account's webhook signing secrets. Messages name what to fix and never repeat a secret.

use crate::config::{Config, StripeKey, StripeMode};
use crate::db::accounts::{self, AddError, NewDirect};
use crate::db::Db;
use crate::domain::accounts::Account;

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
