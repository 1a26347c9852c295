//! The list pages' rows.

use leptos::prelude::*;

use crate::domain::lists::ListResult;

/// One page of list `list` with the filters of `query` (the page's URL query string).
#[server(endpoint = "lists/page")]
pub async fn list_page(list: String, query: String) -> Result<ListResult, ServerFnError> {
    let me = crate::auth::server::require_role(crate::domain::admins::Role::Viewer)?;
    let state = crate::state::AppState::from_context()?;
    let q: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
            .into_owned()
            .collect();
    let scope = crate::auth::server::account_scope(&state.db, &me, q.get("account").map(String::as_str)).await?;
    crate::lists::query::page(&state.db, &list, &q, &scope, state.config.figures_wait)
        .await
        .map_err(ServerFnError::new)
}
