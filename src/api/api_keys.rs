//! Settings → API keys (owners): create (shown once), list, revoke. Audited.

use leptos::prelude::*;

use crate::domain::api_keys::ApiKey;

#[server(endpoint = "api-keys/list")]
pub async fn list_api_keys() -> Result<Vec<ApiKey>, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    require_role(Role::Owner)?;
    let state = crate::state::AppState::from_context()?;
    let rows = crate::db::api_keys::list(&state.db)
        .await
        .map_err(|e| super::internal("listing API keys failed", e))?;
    Ok(rows)
}

#[cfg(feature = "ssr")]
async fn audit(me: &crate::domain::admins::CurrentAdmin, action: &'static str, target: &str, detail: String) {
    if let Ok(state) = crate::state::AppState::from_context() {
        super::audit_action(&state.db, me, action, Some(target), "success", Some(detail)).await;
    }
}

/// Creates a key; the answer is the key itself, shown this once.
#[server(endpoint = "api-keys/create")]
pub async fn create_api_key(name: String) -> Result<String, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    let me = require_role(Role::Owner)?;
    let state = crate::state::AppState::from_context()?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(ServerFnError::new(
            "Give the key a name of 1 to 80 characters (e.g. \"iOS app\").",
        ));
    }
    let (row, key) = crate::db::api_keys::create(&state.db, name, &me.email)
        .await
        .map_err(|e| super::internal("creating an API key failed", e))?;
    audit(&me, "api_key.create", &row.id, format!("{} ({})", row.name, row.prefix)).await;
    Ok(key)
}

#[server(endpoint = "api-keys/revoke")]
pub async fn revoke_api_key(id: String) -> Result<String, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    let me = require_role(Role::Owner)?;
    let state = crate::state::AppState::from_context()?;
    let revoked = crate::db::api_keys::revoke(&state.db, &id)
        .await
        .map_err(|e| super::internal("revoking an API key failed", e))?;
    if !revoked {
        return Err(ServerFnError::new("No such active key."));
    }
    audit(&me, "api_key.revoke", &id, "revoked".into()).await;
    Ok("The key is revoked; requests with it are refused from now on.".into())
}
