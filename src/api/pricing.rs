//! The public pricing page and the Checkout return (`/api/public/`): anonymous, rate-limited per
//! client address.

use leptos::prelude::*;

use crate::domain::pricing::{CheckoutOutcome, PricingData};

/// Who sells on a pricing page: the environment's account (no `?account=`), or another direct
/// account of the operator's with its own key (`?account=acct_…`). Connected accounts, disabled
/// accounts and accounts without a key do not sell here.
#[cfg(feature = "ssr")]
struct Seller {
    /// The storage key (`''`: the environment's account).
    key: String,
    /// `?account=` to carry (`None`: the environment's).
    param: Option<String>,
    stripe: std::sync::Arc<dyn crate::stripe::StripeApi>,
}

#[cfg(feature = "ssr")]
async fn seller(state: &crate::state::AppState, account: Option<String>) -> Result<Seller, ServerFnError> {
    use crate::domain::accounts::{AccountKind, ENVIRONMENT};
    let environment = || Seller {
        key: ENVIRONMENT.to_string(),
        param: None,
        stripe: state.stripe_public.clone(),
    };
    let Some(wanted) = account.map(|a| a.trim().to_string()).filter(|a| !a.is_empty()) else {
        return Ok(environment());
    };
    let failed = |e| super::internal("reading the Stripe accounts failed", e);
    let not_here = || {
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(axum::http::StatusCode::NOT_FOUND);
        }
        ServerFnError::new("These plans are not on sale here.")
    };
    let key = crate::db::accounts::storage_key(&state.db, &wanted)
        .await
        .map_err(failed)?
        .ok_or_else(not_here)?;
    if key == ENVIRONMENT {
        return Ok(environment());
    }
    let account = crate::db::accounts::get(&state.db, &key)
        .await
        .map_err(failed)?
        .ok_or_else(not_here)?;
    if account.kind != AccountKind::Direct || account.disabled || !account.has_secret_key {
        return Err(not_here());
    }
    let client = crate::accounts::client(&state.db, &state.config, &key)
        .await
        .map_err(|_| not_here())?;
    Ok(Seller {
        param: Some(key.clone()),
        key,
        stripe: client,
    })
}

/// Active products with their active licensed prices, from the synced tables, of the account
/// selling (`account`: `?account=` of the page; none: the environment's).
#[server(endpoint = "public/pricing")]
pub async fn pricing_plans(account: Option<String>) -> Result<PricingData, ServerFnError> {
    let state = crate::state::AppState::from_context()?;
    let seller = seller(&state, account).await?;
    let products = crate::db::pricing::offered(&state.db, &seller.key)
        .await
        .map_err(|e| super::internal("listing prices failed", e))?;
    Ok(PricingData {
        products,
        token: uuid::Uuid::new_v4().simple().to_string(),
        stripe_configured: !seller.key.is_empty() || state.config.stripe_key.is_some(),
        account: seller.param,
    })
}

/// Anonymous calls that reach Stripe: `PUBLIC_RATE_LIMIT` a minute per client address, else a
/// 429 that says to wait.
#[cfg(feature = "ssr")]
fn public_budget(state: &crate::state::AppState) -> Result<(), ServerFnError> {
    let info = crate::auth::server::RequestInfo::current();
    let address = info.client_addr.unwrap_or_else(|| "unknown".into());
    if state.public_limiter.allow(&address) {
        return Ok(());
    }
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::TOO_MANY_REQUESTS);
    }
    Err(ServerFnError::new(
        "Too many requests from your network; please wait a minute and try again.",
    ))
}

/// Stripe could not be asked now (its answer failed, or the visitors' share of the request budget
/// stayed in use): 503, a condition to retry rather than a fault of Tally's.
#[cfg(feature = "ssr")]
fn stripe_unavailable(message: &'static str) -> ServerFnError {
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::SERVICE_UNAVAILABLE);
    }
    ServerFnError::new(message)
}

/// Creates a Checkout Session for the price and sends the browser to it (a 302 with JavaScript
/// off). Returns the session's URL.
#[server(endpoint = "public/checkout")]
pub async fn start_checkout(price_id: String, token: String, account: Option<String>) -> Result<String, ServerFnError> {
    use crate::stripe::ops::{self, CheckoutParams};

    let state = crate::state::AppState::from_context()?;
    public_budget(&state)?;
    let seller = seller(&state, account).await?;
    let price_id = price_id.trim().to_string();
    if !crate::stripe::valid_id(&price_id) || token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServerFnError::new(
            "This plan is not available; reload the pricing page.",
        ));
    }
    // Only what the pricing page offers is sold: an archived product, a metered or tiered price,
    // or any price the page does not show is refused before Stripe is called.
    let recurring = crate::db::pricing::offered_price_type(&state.db, &seller.key, &price_id)
        .await
        .map_err(|e| super::internal("reading a price failed", e))?;
    let Some(kind) = recurring else {
        return Err(ServerFnError::new(
            "This plan is not available any more; reload the pricing page.",
        ));
    };
    let base = state.config.public_base_url.as_str().trim_end_matches('/').to_string();
    // The return pages ask the same account's Stripe about the session.
    let carried = seller
        .param
        .as_deref()
        .map(|a| format!("account={a}"))
        .unwrap_or_default();
    let success_url = format!(
        "{base}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}{}",
        if carried.is_empty() {
            String::new()
        } else {
            format!("&{carried}")
        }
    );
    let cancel_url = if carried.is_empty() {
        format!("{base}/checkout/cancel")
    } else {
        format!("{base}/checkout/cancel?{carried}")
    };
    let key = format!("tally-checkout-{token}-{price_id}");
    let params = CheckoutParams {
        price_id: &price_id,
        recurring: kind.as_deref() != Some("one_time"),
        success_url: &success_url,
        cancel_url: &cancel_url,
        reference: &token,
        idempotency_key: &key,
    };
    let sent_at = crate::billing::sent_at();
    let session = ops::create_checkout_session(seller.stripe.as_ref(), &params)
        .await
        .map_err(|e| {
            tracing::warn!(kind = e.kind.as_str(), request_id = ?e.request_id, "creating a Checkout Session failed");
            stripe_unavailable("Checkout is not available right now; please try again in a minute.")
        })?;
    crate::billing::project_or_log(
        &state.db,
        &seller.key,
        crate::domain::resource::Resource::CheckoutSession,
        &session.body,
        sent_at,
    )
    .await;
    let url = session
        .body
        .get("url")
        .and_then(|u| u.as_str())
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or_else(|| ServerFnError::new("Checkout is not available right now; please try again in a minute."))?
        .to_string();
    tracing::info!(price = %price_id, request_id = ?session.request_id, "Checkout Session created");
    leptos_axum::redirect(&url);
    Ok(url)
}

/// Retrieves the session from Stripe (not trusting the URL), stores what it learnt through the
/// projection, and says what happened. Unknown or malformed ids get `None`, never Stripe's text.
#[server(endpoint = "public/checkout-result")]
pub async fn checkout_result(
    session_id: String,
    account: Option<String>,
) -> Result<Option<CheckoutOutcome>, ServerFnError> {
    use crate::domain::money;
    use crate::domain::resource::Resource;
    use crate::projection::read;
    use crate::stripe::{ops, ErrorKind};

    let state = crate::state::AppState::from_context()?;
    let id = session_id.trim();
    if !id.starts_with("cs_") || !crate::stripe::valid_id(id) {
        return Ok(None);
    }
    public_budget(&state)?;
    let seller = match seller(&state, account).await {
        Ok(seller) => seller,
        Err(_) => return Ok(None),
    };
    let sent_at = crate::billing::sent_at();
    let session = match ops::retrieve_checkout_session(seller.stripe.as_ref(), id).await {
        Ok(s) => s.body,
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::InvalidRequest) => return Ok(None),
        Err(e) => {
            tracing::warn!(kind = e.kind.as_str(), request_id = ?e.request_id, "retrieving a Checkout Session failed");
            return Err(stripe_unavailable(
                "We could not check your payment just now. It is safe to reload this page in a minute.",
            ));
        }
    };
    crate::billing::project_or_log(&state.db, &seller.key, Resource::CheckoutSession, &session, sent_at).await;
    let subscription = session.get("subscription").filter(|s| s.is_object());
    if let Some(sub) = subscription {
        crate::billing::project_or_log(&state.db, &seller.key, Resource::Subscription, sub, sent_at).await;
    }
    let status = read::text(&session, "status").unwrap_or_default();
    let payment_status = read::text(&session, "payment_status").unwrap_or_default();
    let outcome_state = match (status.as_str(), payment_status.as_str()) {
        (_, "paid") | (_, "no_payment_required") => "paid",
        ("complete", "unpaid") => "processing",
        ("expired", _) => "expired",
        ("open", _) => "open",
        _ => "unpaid",
    };
    let line = read::list(session.get("line_items")).first();
    let plan = line
        .and_then(|l| read::text(l, "description").or_else(|| l.get("price").and_then(|p| read::text(p, "nickname"))));
    let amount = match (read::int(&session, "amount_total"), read::text(&session, "currency")) {
        (Some(a), Some(c)) => Some(money::format(a, &c)),
        _ => None,
    };
    // The buyer's email and a link to their billing portal only for a session this Tally made
    // (its pricing page's reference) and only for a day: an old link (a browser's history, a
    // forwarded email) or another session's id shows the outcome and nothing personal.
    let ours = read::at(&session, &["metadata", "tally_reference"])
        .and_then(|r| r.as_str())
        .is_some_and(|r| r.len() == 32 && r.bytes().all(|b| b.is_ascii_hexdigit()));
    let fresh = read::int(&session, "created").is_some_and(|c| crate::db::now_unix() - c <= 86_400);
    let personal = ours && fresh;
    let email = read::at(&session, &["customer_details", "email"])
        .and_then(|e| e.as_str())
        .map(str::to_string)
        .or_else(|| read::text(&session, "customer_email"))
        .filter(|_| personal);
    let customer = read::id(&session, "customer").filter(|_| personal);
    let portal_link = customer
        .filter(|c| c.starts_with("cus_"))
        .map(|c| crate::billing::portal_link::path(state.link_secret.expose(), &c, crate::db::now_unix()));
    Ok(Some(CheckoutOutcome {
        state: outcome_state.into(),
        plan,
        amount,
        email,
        subscription_status: subscription.and_then(|s| read::text(s, "status")),
        portal_link,
    }))
}
