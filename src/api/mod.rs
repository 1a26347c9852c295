//! Server functions, grouped by the page that calls them. Each is thin: check the caller's role,
//! check input, call a service, map errors to messages an admin can act on.

pub mod accounts;
pub mod admins;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod customers;
pub mod lists;
pub mod overview;
pub mod payment;
pub mod pricing;
pub mod revenue;
pub mod stripe_sync;
pub mod system;
pub mod webhooks;

/// Records an admin's action in the audit log, with the request's client address and id. A
/// failure to record is logged; the action's own result stands.
#[cfg(feature = "ssr")]
pub(crate) async fn audit_action(
    db: &crate::db::Db,
    me: &crate::domain::admins::CurrentAdmin,
    action: &'static str,
    target: Option<&str>,
    outcome: &'static str,
    detail: Option<String>,
) {
    audit_for(db, me, action, target, outcome, detail, None).await;
}

/// `audit_action` for an action concerning Stripe account `account`.
#[cfg(feature = "ssr")]
async fn audit_for(
    db: &crate::db::Db,
    me: &crate::domain::admins::CurrentAdmin,
    action: &'static str,
    target: Option<&str>,
    outcome: &'static str,
    detail: Option<String>,
    account: Option<String>,
) {
    let info = crate::auth::server::RequestInfo::current();
    let entry = crate::db::audit::NewEntry {
        account_id: account,
        admin_id: Some(me.id),
        admin_email: Some(me.email.clone()),
        action,
        target: target.map(str::to_string),
        outcome,
        client_addr: info.client_addr,
        request_id: info.request_id,
        detail,
    };
    if let Err(e) = crate::db::audit::record(db, entry).await {
        tracing::error!(error = %e, "could not record an audit entry");
    }
}

/// A message for an error that must not reach the page (details go to the log).
#[cfg(feature = "ssr")]
pub(crate) fn internal(context: &str, error: impl std::fmt::Display) -> leptos::prelude::ServerFnError {
    tracing::error!(error = %error, "{context}");
    leptos::prelude::ServerFnError::new("The database did not answer; try again in a moment.")
}

/// A `YYYY-MM-DD` form field (UTC) as Unix seconds at the start of that day.
#[cfg(feature = "ssr")]
pub(crate) fn parse_day(value: Option<String>, label: &str) -> Result<Option<i64>, leptos::prelude::ServerFnError> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| Some(t.and_utc().timestamp()))
            .ok_or_else(|| leptos::prelude::ServerFnError::new(format!("The {label} date must look like 2026-01-31."))),
    }
}

/// Records an admin's action at Stripe in the audit log: success or failure, with what Stripe said,
/// and the Stripe account acted in (`acting_for` gives it).
#[cfg(feature = "ssr")]
pub(crate) async fn audit_stripe_action(
    state: &crate::state::AppState,
    me: &crate::domain::admins::CurrentAdmin,
    account: &str,
    action: &'static str,
    target: &str,
    ok: bool,
    detail: String,
) {
    let outcome = if ok { "success" } else { "failure" };
    audit_for(
        &state.db,
        me,
        action,
        Some(target),
        outcome,
        Some(detail),
        Some(account.to_string()),
    )
    .await;
}

/// The account of row `id` in projected table `table` (the environment's when Tally does not have
/// the row) and the Stripe client that acts for it (`accounts::client`: its key, or the platform's
/// with `Stripe-Account`); 403 when `me` may not act on that account.
#[cfg(feature = "ssr")]
pub(crate) async fn acting_for(
    state: &crate::state::AppState,
    me: &crate::domain::admins::CurrentAdmin,
    table: &str,
    id: &str,
) -> Result<(String, std::sync::Arc<dyn crate::stripe::StripeApi>), leptos::prelude::ServerFnError> {
    let account = crate::db::accounts::owner_of(&state.db, table, id)
        .await
        .map_err(|e| internal("reading a row's account failed", e))?
        .unwrap_or_default();
    crate::auth::server::require_account(&state.db, me, &account).await?;
    if account == crate::domain::accounts::ENVIRONMENT {
        return Ok((account, state.stripe.clone()));
    }
    let client = crate::accounts::client(&state.db, &state.config, &account)
        .await
        .map_err(client_error)?;
    Ok((account, client))
}

/// Why no client acts for an account, as the admin reads it (a database error's detail goes to the
/// log, not the page).
#[cfg(feature = "ssr")]
pub(crate) fn client_error(e: crate::accounts::ClientError) -> leptos::prelude::ServerFnError {
    match e {
        crate::accounts::ClientError::Db(e) => internal("reading a Stripe account failed", e),
        other => leptos::prelude::ServerFnError::new(other.to_string()),
    }
}
