//! Settings → Stripe accounts: admins see the accounts Tally knows; owners add (the key is
//! checked with Stripe and stored sealed), rename, disable and enable them. Audited.

use leptos::prelude::*;

use crate::domain::accounts::AccountsPage;

#[server(endpoint = "accounts/list")]
pub async fn list_accounts() -> Result<AccountsPage, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    let me = require_role(Role::Admin)?;
    let state = crate::state::AppState::from_context()?;
    let accounts = crate::db::accounts::list(&state.db)
        .await
        .map_err(|e| super::internal("listing Stripe accounts failed", e))?;
    let base = state.config.public_base_url.as_str().trim_end_matches('/').to_string();
    Ok(AccountsPage {
        accounts,
        can_manage: me.role.allows(Role::Owner),
        secrets_key_set: state.config.secrets_key.is_some(),
        webhook_url: format!("{base}/stripe/webhook"),
    })
}

/// The owner making the request and the app state.
#[cfg(feature = "ssr")]
fn owner() -> Result<(crate::domain::admins::CurrentAdmin, crate::state::AppState), ServerFnError> {
    let me = crate::auth::server::require_role(crate::domain::admins::Role::Owner)?;
    Ok((me, crate::state::AppState::from_context()?))
}

#[cfg(feature = "ssr")]
async fn changed(
    state: &crate::state::AppState,
    me: &crate::domain::admins::CurrentAdmin,
    action: &'static str,
    id: &str,
    detail: String,
) {
    state.account_secrets.forget().await;
    super::audit_action(&state.db, me, action, Some(id), "success", Some(detail)).await;
}

/// Adds an account reached with its own key. `webhook_secrets`: one or more `whsec_…`, separated
/// by commas, spaces or lines.
#[server(endpoint = "accounts/add")]
pub async fn add_account(name: String, secret_key: String, webhook_secrets: String) -> Result<String, ServerFnError> {
    use crate::accounts::{AddAccount, AddAccountError};
    let (me, state) = owner()?;
    let request = AddAccount {
        secret_key: &secret_key,
        name: Some(&name),
        webhook_secrets: webhook_secrets
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(str::to_string)
            .collect(),
        source: "settings",
    };
    let account = match crate::accounts::add(&state.db, &state.config, request).await {
        Ok(account) => account,
        Err(AddAccountError::Db(e)) => return Err(super::internal("adding a Stripe account failed", e)),
        Err(e) => return Err(ServerFnError::new(e.to_string())),
    };
    let mode = if account.livemode == Some(true) { "live" } else { "test" };
    let detail = format!("{} webhook secret(s), {mode}", account.webhook_secrets);
    changed(&state, &me, "account.add", &account.id, detail).await;
    Ok(format!(
        "Added {} ({}, {mode} mode). Point its webhook endpoint at this Tally; its events are filed under it.",
        account.name, account.id
    ))
}

#[server(endpoint = "accounts/rename")]
pub async fn rename_account(id: String, name: String) -> Result<String, ServerFnError> {
    let (me, state) = owner()?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ServerFnError::new("The name must have 1 to 100 characters."));
    }
    let done = crate::db::accounts::rename(&state.db, &id, name)
        .await
        .map_err(|e| super::internal("renaming a Stripe account failed", e))?;
    if !done {
        return Err(ServerFnError::new("No such account."));
    }
    changed(&state, &me, "account.rename", &id, format!("named {name:?}")).await;
    Ok(format!("Renamed to {name}."))
}

/// Disables (`disabled` = true) or enables an account: a disabled account's webhook secrets
/// verify nothing.
#[server(endpoint = "accounts/disabled")]
pub async fn set_account_disabled(id: String, disabled: bool) -> Result<String, ServerFnError> {
    let (me, state) = owner()?;
    let done = crate::db::accounts::set_disabled(&state.db, &id, disabled)
        .await
        .map_err(|e| super::internal("changing a Stripe account failed", e))?;
    if !done {
        return Err(ServerFnError::new("No such account."));
    }
    let (action, word) = if disabled {
        ("account.disable", "disabled: its deliveries are refused")
    } else {
        ("account.enable", "enabled")
    };
    changed(&state, &me, action, &id, word.into()).await;
    Ok(format!("{id} is {word}."))
}

/// Asks Stripe about an account with the client Tally would use for it (admins and owners):
/// whether its key works, or, for a connected account, whether the platform may act for it.
#[server(endpoint = "accounts/check")]
pub async fn check_account(id: String) -> Result<String, ServerFnError> {
    use crate::accounts::ClientError;
    let me = crate::auth::server::require_role(crate::domain::admins::Role::Admin)?;
    let state = crate::state::AppState::from_context()?;
    let result = crate::accounts::check(&state.db, &state.config, &id).await;
    let outcome = if result.is_ok() { "success" } else { "failure" };
    let detail = match &result {
        Ok(_) => "reachable".to_string(),
        Err(e) => e.to_string(),
    };
    super::audit_action(&state.db, &me, "account.check", Some(&id), outcome, Some(detail)).await;
    match result {
        Ok(message) => Ok(message),
        Err(ClientError::Db(e)) => Err(super::internal("checking a Stripe account failed", e)),
        Err(e) => Err(ServerFnError::new(e.to_string())),
    }
}

/// The accounts the signed-in admin may switch between (the layout's account menu): every
/// account for owners and unlimited admins, else those they are limited to. Empty on public pages.
#[server(endpoint = "accounts/menu")]
pub async fn account_menu() -> Result<Vec<crate::domain::accounts::AccountChoice>, ServerFnError> {
    use crate::domain::accounts::{AccountChoice, AccountKind, ENVIRONMENT, ENVIRONMENT_PARAM};

    let Some(me) = crate::auth::server::current_admin() else {
        return Ok(Vec::new());
    };
    let state = crate::state::AppState::from_context()?;
    let scope = crate::auth::server::account_scope(&state.db, &me, None).await?;
    let accounts = crate::db::accounts::list(&state.db)
        .await
        .map_err(|e| super::internal("listing Stripe accounts failed", e))?;
    let mut out: Vec<AccountChoice> = Vec::new();
    if !accounts.iter().any(|a| a.source == "environment") && scope.covers(ENVIRONMENT) {
        out.push(AccountChoice {
            param: ENVIRONMENT_PARAM.to_string(),
            name: "Main account".to_string(),
            kind: AccountKind::Direct,
        });
    }
    for a in accounts {
        let key = if a.source == "environment" {
            ENVIRONMENT
        } else {
            a.id.as_str()
        };
        if scope.covers(key) {
            out.push(AccountChoice {
                param: a.id.clone(),
                name: a.name.clone(),
                kind: a.kind,
            });
        }
    }
    Ok(out)
}

/// Stripe Connect: the connected accounts the signed-in admin may see, with their volume and MRR
/// and the application fees the platform took from them, per currency.
#[server(endpoint = "accounts/connected")]
pub async fn connected_accounts() -> Result<Vec<crate::domain::accounts::ConnectedAccount>, ServerFnError> {
    let me = crate::auth::server::require_role(crate::domain::admins::Role::Viewer)?;
    let state = crate::state::AppState::from_context()?;
    let scope = crate::auth::server::account_scope(&state.db, &me, None).await?;
    crate::revenue::connected::list(&state.db, &scope, crate::db::now_unix())
        .await
        .map_err(|e| super::internal("listing connected accounts failed", e))
}
