//! Customers: the list (search, newest first, keyset pages) and one customer's billing history.

use leptos::prelude::*;

use crate::domain::customers::CustomerDetail;

#[server(endpoint = "customers/get")]
pub async fn get_customer(id: String) -> Result<Option<CustomerDetail>, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    use crate::state::AppState;

    let me = require_role(Role::Viewer)?;
    let state = AppState::from_context()?;
    // A customer of an account the admin may not see: 403.
    let account = crate::db::accounts::owner_of(&state.db, "customers", &id)
        .await
        .map_err(|e| super::internal("reading a customer failed", e))?;
    if let Some(account) = account {
        crate::auth::server::require_account(&state.db, &me, &account).await?;
    }
    let ready = state.config.stripe_mode().is_some();
    crate::db::customers::detail(&state.db, &id)
        .await
        .map(|d| {
            d.map(|d| CustomerDetail {
                stripe_ready: ready,
                ..d
            })
        })
        .map_err(|e| super::internal("reading a customer failed", e))
}

/// Opens the customer's billing portal (admins and owners); the portal returns to the customer's
/// page in Tally.
#[server(endpoint = "billing/portal")]
pub async fn open_customer_portal(customer_id: String) -> Result<String, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;

    let me = require_role(Role::Admin)?;
    let state = crate::state::AppState::from_context()?;
    if !customer_id.starts_with("cus_") || !crate::stripe::valid_id(&customer_id) {
        return Err(ServerFnError::new("No such customer."));
    }
    let base = state.config.public_base_url.as_str().trim_end_matches('/').to_string();
    let return_url = format!("{base}/customers/{customer_id}");
    let (account, stripe) = super::acting_for(&state, &me, "customers", &customer_id).await?;
    let result = crate::stripe::ops::create_portal_session(stripe.as_ref(), &customer_id, &return_url).await;
    let detail = match &result {
        Ok(r) => format!("request {}", r.request_id.as_deref().unwrap_or("?")),
        Err(e) => e.to_string(),
    };
    super::audit_stripe_action(
        &state,
        &me,
        &account,
        "billing.portal",
        &customer_id,
        result.is_ok(),
        detail,
    )
    .await;
    let session = result.map_err(|e| ServerFnError::new(e.admin_message()))?;
    let url = session
        .body
        .get("url")
        .and_then(|u| u.as_str())
        .ok_or_else(|| ServerFnError::new("Stripe did not return a portal address."))?
        .to_string();
    leptos_axum::redirect(&url);
    Ok(url)
}

/// Cancel at period end, cancel now or resume (admins and owners), audited.
#[server(endpoint = "billing/subscription")]
pub async fn change_subscription(
    subscription_id: String,
    action: String,
    token: String,
) -> Result<String, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    use crate::stripe::ops::{self, SubscriptionChange};

    let me = require_role(Role::Admin)?;
    let state = crate::state::AppState::from_context()?;
    let change = SubscriptionChange::parse(&action).ok_or_else(|| ServerFnError::new("Unknown action."))?;
    if !subscription_id.starts_with("sub_") || !crate::stripe::valid_id(&subscription_id) {
        return Err(ServerFnError::new("No such subscription."));
    }
    if token.len() < 8 || token.len() > 64 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ServerFnError::new(
            "The form has expired; reload the page and try again.",
        ));
    }
    let key = format!("tally-sub-{subscription_id}-{}-{token}", change.as_str());
    let sent_at = crate::billing::sent_at();
    let (account, stripe) = super::acting_for(&state, &me, "subscriptions", &subscription_id).await?;
    let result = ops::change_subscription(stripe.as_ref(), &subscription_id, change, &key).await;
    let detail = match &result {
        Ok(r) => format!(
            "{} · key {key} · request {}",
            change.as_str(),
            r.request_id.as_deref().unwrap_or("?")
        ),
        Err(e) => format!("{}: {e}", change.as_str()),
    };
    super::audit_stripe_action(
        &state,
        &me,
        &account,
        "subscription.change",
        &subscription_id,
        result.is_ok(),
        detail,
    )
    .await;
    let response = result.map_err(|e| ServerFnError::new(e.admin_message()))?;
    crate::billing::project_or_log(
        &state.db,
        &account,
        crate::domain::resource::Resource::Subscription,
        &response.body,
        sent_at,
    )
    .await;
    Ok(match change {
        SubscriptionChange::CancelAtPeriodEnd => "The subscription will cancel at the end of its period.",
        SubscriptionChange::CancelNow => "The subscription is canceled.",
        SubscriptionChange::Resume => "The subscription will continue; the scheduled cancellation is removed.",
    }
    .to_string())
}
