//! Settings → Admins (owners only): create admins, change roles, disable, reset passwords.

use leptos::prelude::*;

use crate::domain::admins::AdminView;

#[cfg(feature = "ssr")]
mod server {
    use leptos::prelude::ServerFnError;

    use crate::auth::server::{require_role, RequestInfo};
    use crate::db::admins::AdminChangeError;
    use crate::db::audit;
    use crate::domain::admins::{CurrentAdmin, Role};
    use crate::state::AppState;

    pub fn owner() -> Result<(CurrentAdmin, AppState), ServerFnError> {
        let me = require_role(Role::Owner)?;
        Ok((me, AppState::from_context()?))
    }

    /// Records an admin change in the audit log; failures to record are logged, not shown.
    pub async fn audit_change(
        state: &AppState,
        me: &CurrentAdmin,
        action: &'static str,
        target: i64,
        outcome: &'static str,
        detail: Option<String>,
    ) {
        let info = RequestInfo::current();
        let entry = audit::NewEntry {
            account_id: None,
            admin_id: Some(me.id),
            admin_email: Some(me.email.clone()),
            action,
            target: Some(format!("admin:{target}")),
            outcome,
            client_addr: info.client_addr,
            request_id: info.request_id,
            detail,
        };
        if let Err(e) = audit::record(&state.db, entry).await {
            tracing::error!(error = %e, action, "could not record an audit entry");
        }
    }

    pub fn change_error(e: AdminChangeError) -> ServerFnError {
        match e {
            AdminChangeError::Db(db) => crate::api::internal("admin change failed", db),
            other => ServerFnError::new(other.to_string()),
        }
    }
}

#[server(endpoint = "admins/list")]
pub async fn list_admins() -> Result<Vec<AdminView>, ServerFnError> {
    let (me, state) = server::owner()?;
    let rows = crate::db::admins::list(&state.db)
        .await
        .map_err(|e| super::internal("listing admins failed", e))?;
    let main = crate::db::accounts::environment_id(&state.db)
        .await
        .map_err(|e| super::internal("listing admins failed", e))?
        .unwrap_or_else(|| crate::domain::accounts::ENVIRONMENT_PARAM.to_string());
    let mut limits = crate::db::accounts::all_limits(&state.db)
        .await
        .map_err(|e| super::internal("listing admins failed", e))?;
    Ok(rows
        .into_iter()
        .map(|a| AdminView {
            // As `?account=` names them: the environment's account by its `acct_…`.
            accounts: limits
                .remove(&a.id)
                .unwrap_or_default()
                .into_iter()
                .map(|k| if k.is_empty() { main.clone() } else { k })
                .collect(),
            is_you: a.id == me.id,
            id: a.id,
            email: a.email,
            role: a.role,
            disabled: a.disabled,
            created_at: a.created_at,
            last_login_at: a.last_login_at,
        })
        .collect())
}

#[server(endpoint = "admins/create")]
pub async fn create_admin(email: String, password: String, role: String) -> Result<String, ServerFnError> {
    let (me, state) = server::owner()?;
    let email = crate::domain::admins::normalize_email(&email).map_err(ServerFnError::new)?;
    let role = crate::domain::admins::Role::parse(&role)
        .ok_or_else(|| ServerFnError::new("Choose a role: owner, admin or viewer."))?;
    crate::domain::admins::check_new_password(&password).map_err(ServerFnError::new)?;
    let hash = crate::auth::server::password::hash(password)
        .await
        .map_err(|e| super::internal("password hashing failed", e))?;
    match crate::db::admins::create(&state.db, &email, &hash, role).await {
        Ok(id) => {
            server::audit_change(&state, &me, "admin.create", id, "success", Some(format!("role {role}"))).await;
            Ok(format!("{email} can now log in as {role}."))
        }
        Err(e) => Err(server::change_error(e)),
    }
}

#[server(endpoint = "admins/role")]
pub async fn change_role(id: i64, role: String) -> Result<String, ServerFnError> {
    let (me, state) = server::owner()?;
    let role = crate::domain::admins::Role::parse(&role)
        .ok_or_else(|| ServerFnError::new("Choose a role: owner, admin or viewer."))?;
    match crate::db::admins::update_access(&state.db, id, Some(role), None).await {
        Ok(row) => {
            server::audit_change(&state, &me, "admin.role", id, "success", Some(format!("role {role}"))).await;
            Ok(format!("{} is now {role}.", row.email))
        }
        Err(e) => {
            server::audit_change(&state, &me, "admin.role", id, "refused", Some(e.to_string())).await;
            Err(server::change_error(e))
        }
    }
}

/// Limits an admin or viewer to some Stripe accounts (`accounts`: their ids, separated by commas
/// or spaces; empty: every account). Owners only; audited.
#[server(endpoint = "admins/accounts")]
pub async fn limit_admin_accounts(id: i64, accounts: String) -> Result<String, ServerFnError> {
    let (me, state) = server::owner()?;
    let failed = |e| super::internal("changing an admin's accounts failed", e);
    let Some(target) = crate::db::admins::find(&state.db, id).await.map_err(failed)? else {
        return Err(ServerFnError::new("No such admin."));
    };
    if target.role == crate::domain::admins::Role::Owner {
        return Err(ServerFnError::new(
            "Owners see every Stripe account. Make them an admin or viewer first to limit them.",
        ));
    }
    let mut keys = Vec::new();
    let mut names = Vec::new();
    for wanted in accounts
        .split([',', ' ', '\n', '\t'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        let Some(key) = crate::db::accounts::storage_key(&state.db, wanted)
            .await
            .map_err(failed)?
        else {
            let shown: String = wanted.chars().take(40).collect();
            return Err(ServerFnError::new(format!(
                "Tally knows no Stripe account {shown:?}: use the acct_… ids listed under Settings → Stripe accounts."
            )));
        };
        keys.push(key);
        names.push(wanted.to_string());
    }
    keys.sort();
    keys.dedup();
    crate::db::accounts::set_limits(&state.db, id, &keys)
        .await
        .map_err(failed)?;
    let detail = if names.is_empty() {
        "every account".to_string()
    } else {
        names.join(", ")
    };
    server::audit_change(&state, &me, "admin.accounts", id, "success", Some(detail.clone())).await;
    Ok(if names.is_empty() {
        format!("{} sees every Stripe account.", target.email)
    } else {
        format!("{} sees only {detail}.", target.email)
    })
}

#[server(endpoint = "admins/disabled")]
pub async fn set_disabled(id: i64, disabled: bool) -> Result<String, ServerFnError> {
    let (me, state) = server::owner()?;
    let action = if disabled { "admin.disable" } else { "admin.enable" };
    match crate::db::admins::update_access(&state.db, id, None, Some(disabled)).await {
        Ok(row) => {
            server::audit_change(&state, &me, action, id, "success", None).await;
            Ok(if disabled {
                format!("{} can no longer log in; their sessions have ended.", row.email)
            } else {
                format!("{} can log in again.", row.email)
            })
        }
        Err(e) => {
            server::audit_change(&state, &me, action, id, "refused", Some(e.to_string())).await;
            Err(server::change_error(e))
        }
    }
}

#[server(endpoint = "admins/password")]
pub async fn reset_password(id: i64, password: String) -> Result<String, ServerFnError> {
    let (me, state) = server::owner()?;
    crate::domain::admins::check_new_password(&password).map_err(ServerFnError::new)?;
    let hash = crate::auth::server::password::hash(password)
        .await
        .map_err(|e| super::internal("password hashing failed", e))?;
    // The admin's sessions end: whoever knew the old password is signed out everywhere.
    let change = crate::db::admins::PasswordChange::Reset {
        at_ms: state.config.clock.now_millis(),
    };
    crate::db::admins::set_password_hash(&state.db, id, &hash, change)
        .await
        .map_err(server::change_error)?;
    server::audit_change(&state, &me, "admin.password_reset", id, "success", None).await;
    Ok("Password changed. Give it to them through a channel you trust.".into())
}
