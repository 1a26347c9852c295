//! The audit log page (admins and owners).

use leptos::prelude::*;

use crate::domain::audit::AuditPage;

/// `from` and `until` are dates (`YYYY-MM-DD`, UTC); `until` includes that whole day.
#[server(endpoint = "audit/list")]
pub async fn list_audit(
    admin: Option<String>,
    action: Option<String>,
    from: Option<String>,
    until: Option<String>,
    before: Option<i64>,
) -> Result<AuditPage, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::db::audit;
    use crate::domain::admins::Role;
    use crate::state::AppState;

    require_role(Role::Admin)?;
    let state = AppState::from_context()?;
    let non_empty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let filter = audit::Filter {
        admin_email: non_empty(admin).map(|s| s.to_lowercase()),
        action: non_empty(action),
        from: super::parse_day(from, "from")?,
        until: super::parse_day(until, "until")?.map(|t| t + 86_400),
        before_id: before,
    };
    let entries = audit::list(&state.db, &filter, crate::domain::audit::PAGE_SIZE)
        .await
        .map_err(|e| super::internal("reading the audit log failed", e))?;
    let actions = audit::actions(&state.db)
        .await
        .map_err(|e| super::internal("reading the audit log failed", e))?;
    let next_before = (entries.len() as i64 == crate::domain::audit::PAGE_SIZE)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(AuditPage {
        entries,
        actions,
        next_before,
    })
}
