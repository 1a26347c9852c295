//! The Webhooks page: received events, their processing state, and retry/replay.

use leptos::prelude::*;

use crate::domain::events::{EventDetail, EventList};

/// `from` and `until` are dates (`YYYY-MM-DD`, UTC); `until` includes that whole day.
#[server(endpoint = "webhooks/list")]
pub async fn list_events(
    event_type: Option<String>,
    status: Option<String>,
    from: Option<String>,
    until: Option<String>,
    before: Option<String>,
    account: Option<String>,
) -> Result<EventList, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    use crate::state::AppState;

    let me = require_role(Role::Viewer)?;
    let state = AppState::from_context()?;
    let scope = crate::auth::server::account_scope(&state.db, &me, account.as_deref()).await?;
    let non_empty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let before_received = non_empty(before).and_then(|b| {
        let (at, id) = b.split_once(':')?;
        Some((at.parse().ok()?, id.to_string()))
    });
    let filter = crate::db::events::EventFilter {
        event_type: non_empty(event_type),
        status: non_empty(status),
        object_id: None,
        from: super::parse_day(from, "from")?,
        until: super::parse_day(until, "until")?.map(|t| t + 86_400),
        before_received,
        scope,
    };
    let events = crate::db::events::list(&state.db, &filter, crate::domain::events::PAGE_SIZE)
        .await
        .map_err(|e| super::internal("listing webhook events failed", e))?;
    let next_before = (events.len() as i64 == crate::domain::events::PAGE_SIZE)
        .then(|| events.last().map(|e| format!("{}:{}", e.received_at, e.id)))
        .flatten();
    Ok(EventList { events, next_before })
}

#[server(endpoint = "webhooks/get")]
pub async fn get_event(id: String) -> Result<Option<EventDetail>, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    use crate::state::AppState;

    let me = require_role(Role::Viewer)?;
    let state = AppState::from_context()?;
    let found = crate::db::events::get(&state.db, &id)
        .await
        .map_err(|e| super::internal("reading a webhook event failed", e))?;
    // Another account's event than the admin may see: 403.
    if let Some((event, _)) = &found {
        crate::auth::server::require_account(&state.db, &me, event.account_id.as_deref().unwrap_or_default()).await?;
    }
    Ok(found.map(|(summary, payload)| {
        let pretty = serde_json::from_str::<serde_json::Value>(&payload)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or(payload);
        EventDetail {
            event: summary,
            payload: pretty,
        }
    }))
}

/// Queues the event again: a retry for a failed one, a replay for an applied one (projection is
/// idempotent and newer-wins, so a replay never rolls data back). Admins and owners; audited.
#[server(endpoint = "webhooks/requeue")]
pub async fn requeue_event(id: String) -> Result<String, ServerFnError> {
    use crate::auth::server::{require_role, RequestInfo};
    use crate::db::audit;
    use crate::domain::admins::Role;
    use crate::state::AppState;

    let me = require_role(Role::Admin)?;
    let state = AppState::from_context()?;
    let found = crate::db::events::get(&state.db, &id)
        .await
        .map_err(|e| super::internal("reading a webhook event failed", e))?;
    // Another account's event than the admin may act on: 403.
    if let Some((event, _)) = &found {
        crate::auth::server::require_account(&state.db, &me, event.account_id.as_deref().unwrap_or_default()).await?;
    }
    let before = found.map(|(s, _)| s.status);
    let queued = crate::webhooks::inbox::requeue(&state.db, &id)
        .await
        .map_err(|e| super::internal("requeueing a webhook event failed", e))?;
    let action = if before == Some(crate::domain::events::EventStatus::Failed) {
        "webhook.retry"
    } else {
        "webhook.replay"
    };
    let info = RequestInfo::current();
    let entry = audit::NewEntry {
        account_id: None,
        admin_id: Some(me.id),
        admin_email: Some(me.email),
        action,
        target: Some(id.clone()),
        outcome: if queued { "success" } else { "refused" },
        client_addr: info.client_addr,
        request_id: info.request_id,
        detail: before.map(|s| format!("was {s}")),
    };
    if let Err(e) = audit::record(&state.db, entry).await {
        tracing::error!(error = %e, "could not record an audit entry");
    }
    if !queued {
        return Err(ServerFnError::new(match before {
            None => "No such event.".to_string(),
            Some(s) => format!("This event is {s} and cannot be queued again."),
        }));
    }
    state.events.notify_one();
    Ok(format!("{id} is queued and will be applied in a moment."))
}

/// Queues every failed event of a type (every type when `event_type` is empty) again, after the
/// cause of the failures is fixed. Admins and owners; audited with the count.
#[server(endpoint = "webhooks/retry_failed")]
pub async fn retry_failed(event_type: String) -> Result<String, ServerFnError> {
    use crate::auth::server::{require_role, RequestInfo};
    use crate::db::audit;
    use crate::domain::admins::Role;
    use crate::state::AppState;

    let me = require_role(Role::Admin)?;
    let event_type = event_type.trim().to_string();
    if event_type.len() > 100
        || !event_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._".contains(c))
    {
        return Err(ServerFnError::new(
            "The event type looks like invoice.paid: letters, digits, dots and underscores.",
        ));
    }
    let state = AppState::from_context()?;
    // The failed events of the accounts the admin may act on.
    let scope = crate::auth::server::account_scope(&state.db, &me, None).await?;
    let which = crate::webhooks::inbox::Failed::OfType(Some(event_type.as_str()).filter(|t| !t.is_empty()), &scope);
    let count = crate::webhooks::inbox::requeue_failed(&state.db, which)
        .await
        .map_err(|e| super::internal("requeueing failed webhook events failed", e))?;
    let info = RequestInfo::current();
    let what = if event_type.is_empty() {
        "all types".to_string()
    } else {
        event_type.clone()
    };
    let entry = audit::NewEntry {
        account_id: None,
        admin_id: Some(me.id),
        admin_email: Some(me.email),
        action: "webhook.retry_failed",
        target: Some(what.clone()),
        outcome: "success",
        client_addr: info.client_addr,
        request_id: info.request_id,
        detail: Some(format!("{count} failed events queued again")),
    };
    if let Err(e) = audit::record(&state.db, entry).await {
        tracing::error!(error = %e, "could not record an audit entry");
    }
    state.events.notify_one();
    Ok(match count {
        0 => format!("No failed events of {what}."),
        1 => format!("1 failed event of {what} is queued and will be applied in a moment."),
        n => format!("{n} failed events of {what} are queued and will be applied in a moment."),
    })
}
