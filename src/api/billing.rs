//! Billing actions: the public pricing page and Checkout return, the billing portal, refunds and
//! subscription changes. Public functions live under `/api/public/`.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A price on the pricing page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPrice {
    pub id: String,
    pub unit_amount: i64,
    pub currency: String,
    /// `month`, `year`, `week`, `day`; `None` for one-time prices.
    pub interval: Option<String>,
    pub interval_count: i64,
    pub nickname: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductPlans {
    pub product_id: String,
    pub name: String,
    pub description: Option<String>,
    pub prices: Vec<PlanPrice>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingData {
    pub products: Vec<ProductPlans>,
    /// A fresh token per page view: the Checkout idempotency key is derived from it, so a double
    /// click opens one session.
    pub token: String,
    pub stripe_configured: bool,
}

/// Active products with their active licensed prices, from the synced tables.
#[server(endpoint = "public/pricing")]
pub async fn pricing_plans() -> Result<PricingData, ServerFnError> {
    use sqlx::Row;

    let state = crate::state::AppState::from_context()?;
    let rows = sqlx::query(&format!(
        "SELECT p.id AS price_id, p.unit_amount, p.currency, p.recurring_interval, p.recurring_interval_count, \
                p.nickname, p.product_id, pr.name, pr.raw AS product_raw \
         FROM prices p JOIN products pr ON pr.id = p.product_id \
         WHERE {OFFERED} ORDER BY pr.name, pr.id, p.unit_amount, p.id"
    ))
    .fetch_all(state.db.reader())
    .await
    .map_err(|e| super::internal("listing prices failed", e))?;
    let mut products: Vec<ProductPlans> = Vec::new();
    for r in &rows {
        let product_id: String = r.try_get("product_id").unwrap_or_default();
        let price = PlanPrice {
            id: r.try_get("price_id").unwrap_or_default(),
            unit_amount: r.try_get::<Option<i64>, _>("unit_amount").ok().flatten().unwrap_or(0),
            currency: r
                .try_get::<Option<String>, _>("currency")
                .ok()
                .flatten()
                .unwrap_or_default(),
            interval: r.try_get("recurring_interval").ok().flatten(),
            interval_count: r
                .try_get::<Option<i64>, _>("recurring_interval_count")
                .ok()
                .flatten()
                .unwrap_or(1),
            nickname: r.try_get("nickname").ok().flatten(),
        };
        match products.last_mut().filter(|p| p.product_id == product_id) {
            Some(product) => product.prices.push(price),
            None => {
                let raw: String = r.try_get("product_raw").unwrap_or_default();
                let description = serde_json::from_str::<serde_json::Value>(&raw)
                    .ok()
                    .and_then(|v| v.get("description").and_then(|d| d.as_str()).map(str::to_string));
                products.push(ProductPlans {
                    product_id,
                    name: r
                        .try_get::<Option<String>, _>("name")
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                    description,
                    prices: vec![price],
                });
            }
        }
    }
    Ok(PricingData {
        products,
        token: uuid::Uuid::new_v4().simple().to_string(),
        stripe_configured: state.config.stripe_key.is_some(),
    })
}

/// The prices the pricing page shows and Checkout sells: active, licensed, recurring or one-time,
/// with a unit amount, of an active product (`p` prices, `pr` products).
#[cfg(feature = "ssr")]
const OFFERED: &str = "p.active = 1 AND p.deleted = 0 AND pr.active = 1 AND pr.deleted = 0 \
    AND p.unit_amount IS NOT NULL AND COALESCE(p.usage_type, 'licensed') = 'licensed' \
    AND COALESCE(p.type, 'recurring') IN ('recurring', 'one_time')";

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
pub async fn start_checkout(price_id: String, token: String) -> Result<String, ServerFnError> {
    use crate::stripe::ops::{self, CheckoutParams};

    let state = crate::state::AppState::from_context()?;
    public_budget(&state)?;
    let price_id = price_id.trim().to_string();
    if !crate::stripe::valid_id(&price_id) || token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServerFnError::new(
            "This plan is not available; reload the pricing page.",
        ));
    }
    // Only what the pricing page offers is sold: an archived product, a metered or tiered price,
    // or any price the page does not show is refused before Stripe is called.
    let recurring: Option<Option<String>> = sqlx::query_scalar(&format!(
        "SELECT p.type FROM prices p JOIN products pr ON pr.id = p.product_id WHERE p.id = $1 AND {OFFERED}"
    ))
    .bind(&price_id)
    .fetch_optional(state.db.reader())
    .await
    .map_err(|e| super::internal("reading a price failed", e))?;
    let Some(kind) = recurring else {
        return Err(ServerFnError::new(
            "This plan is not available any more; reload the pricing page.",
        ));
    };
    let base = state.config.public_base_url.as_str().trim_end_matches('/').to_string();
    let success_url = format!("{base}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}");
    let cancel_url = format!("{base}/checkout/cancel");
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
    let session = ops::create_checkout_session(state.stripe_public.as_ref(), &params)
        .await
        .map_err(|e| {
            tracing::warn!(kind = e.kind.as_str(), request_id = ?e.request_id, "creating a Checkout Session failed");
            stripe_unavailable("Checkout is not available right now; please try again in a minute.")
        })?;
    crate::billing::project_or_log(
        &state.db,
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

/// What the success page tells the customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutOutcome {
    /// `paid`, `processing`, `unpaid`, `open` (not finished) or `expired`.
    pub state: String,
    pub plan: Option<String>,
    pub amount: Option<String>,
    pub email: Option<String>,
    pub subscription_status: Option<String>,
    /// A signed link to the customer's billing portal (when there is a customer).
    pub portal_link: Option<String>,
}

/// Retrieves the session from Stripe (not trusting the URL), stores what it learnt through the
/// projection, and says what happened. Unknown or malformed ids get `None`, never Stripe's text.
#[server(endpoint = "public/checkout-result")]
pub async fn checkout_result(session_id: String) -> Result<Option<CheckoutOutcome>, ServerFnError> {
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
    let sent_at = crate::billing::sent_at();
    let session = match ops::retrieve_checkout_session(state.stripe_public.as_ref(), id).await {
        Ok(s) => s.body,
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::InvalidRequest) => return Ok(None),
        Err(e) => {
            tracing::warn!(kind = e.kind.as_str(), request_id = ?e.request_id, "retrieving a Checkout Session failed");
            return Err(stripe_unavailable(
                "We could not check your payment just now. It is safe to reload this page in a minute.",
            ));
        }
    };
    crate::billing::project_or_log(&state.db, Resource::CheckoutSession, &session, sent_at).await;
    let subscription = session.get("subscription").filter(|s| s.is_object());
    if let Some(sub) = subscription {
        crate::billing::project_or_log(&state.db, Resource::Subscription, sub, sent_at).await;
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

/// Records an admin's Stripe action in the audit log.
#[cfg(feature = "ssr")]
async fn audit(
    state: &crate::state::AppState,
    me: &crate::domain::admins::CurrentAdmin,
    action: &'static str,
    target: &str,
    ok: bool,
    detail: String,
) {
    let outcome = if ok { "success" } else { "failure" };
    super::audit_action(&state.db, me, action, Some(target), outcome, Some(detail)).await;
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
    let result = crate::stripe::ops::create_portal_session(state.stripe.as_ref(), &customer_id, &return_url).await;
    let detail = match &result {
        Ok(r) => format!("request {}", r.request_id.as_deref().unwrap_or("?")),
        Err(e) => e.to_string(),
    };
    audit(&state, &me, "billing.portal", &customer_id, result.is_ok(), detail).await;
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

/// A refund of a payment (admins and owners). `amount` as typed (empty: all that remains);
/// `idempotency_key` fixed when the form was rendered.
#[server(endpoint = "billing/refund")]
pub async fn refund_payment(
    charge_id: String,
    amount: Option<String>,
    reason: Option<String>,
    note: Option<String>,
    idempotency_key: String,
) -> Result<String, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::billing::refunds::{self, RefundError, RefundForm};
    use crate::domain::admins::Role;
    use crate::domain::money;

    let me = require_role(Role::Admin)?;
    let state = crate::state::AppState::from_context()?;
    let form = RefundForm {
        charge_id: charge_id.clone(),
        amount,
        reason,
        note,
        idempotency_key: idempotency_key.clone(),
    };
    let result = refunds::refund(&state.db, state.stripe.as_ref(), &me.email, me.id, &form).await;
    match result {
        Ok(done) => {
            if done.sent_now {
                let detail = format!(
                    "refund {} of {} · key {} · request {}",
                    done.refund_id,
                    money::format(done.amount, &done.currency),
                    done.stripe_idempotency_key,
                    done.request_id.as_deref().unwrap_or("?")
                );
                audit(&state, &me, "payment.refund", &charge_id, true, detail).await;
            }
            Ok(format!(
                "Refund of {} {}: {} until Stripe confirms it.",
                money::format(done.amount, &done.currency),
                if done.sent_now { "sent" } else { "was already sent" },
                done.status
            ))
        }
        Err(RefundError::Db(e)) => Err(super::internal("recording a refund failed", e)),
        Err(e) => {
            match &e {
                RefundError::Stripe(se) => {
                    audit(&state, &me, "payment.refund", &charge_id, false, se.to_string()).await;
                }
                RefundError::OutcomeUnknown(message) => {
                    let detail = format!("outcome unknown, being checked: {message}");
                    audit(&state, &me, "payment.refund", &charge_id, false, detail).await;
                }
                _ => {}
            }
            Err(ServerFnError::new(e.to_string()))
        }
    }
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
    let result = ops::change_subscription(state.stripe.as_ref(), &subscription_id, change, &key).await;
    let detail = match &result {
        Ok(r) => format!(
            "{} · key {key} · request {}",
            change.as_str(),
            r.request_id.as_deref().unwrap_or("?")
        ),
        Err(e) => format!("{}: {e}", change.as_str()),
    };
    audit(
        &state,
        &me,
        "subscription.change",
        &subscription_id,
        result.is_ok(),
        detail,
    )
    .await;
    let response = result.map_err(|e| ServerFnError::new(e.admin_message()))?;
    crate::billing::project_or_log(
        &state.db,
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

/// A payment (charge) with its refunds, for the payment page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    pub id: String,
    pub created: Option<i64>,
    pub status: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub refunded: i64,
    pub remaining: i64,
    /// Refunds asked for whose outcome Stripe did not confirm: being checked.
    pub checking: i64,
    pub customer_id: Option<String>,
    pub customer_email: Option<String>,
    pub card: Option<String>,
    pub failure: Option<String>,
    pub refunds: Vec<RefundRow>,
    /// A fresh idempotency key for the refund form.
    pub form_key: String,
    /// A Stripe key is configured, so a refund can be sent.
    #[serde(default)]
    pub stripe_ready: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRow {
    pub id: String,
    pub created: Option<i64>,
    pub amount: i64,
    pub status: Option<String>,
    pub reason: Option<String>,
    pub requested_by: Option<String>,
    pub note: Option<String>,
}

#[server(endpoint = "billing/payment")]
pub async fn payment_detail(id: String) -> Result<Option<PaymentView>, ServerFnError> {
    use sqlx::Row;

    use crate::auth::server::require_role;

    use crate::domain::admins::Role;

    require_role(Role::Viewer)?;
    let state = crate::state::AppState::from_context()?;
    let db = &state.db;
    let failed = |e: sqlx::Error| super::internal("reading a payment failed", e);
    let Some(row) = sqlx::query(
        "SELECT c.id, c.created, c.status, c.amount, c.currency, c.customer_id, c.card_brand, c.card_last4, \
                c.failure_message, cu.email FROM charges c LEFT JOIN customers cu ON cu.id = c.customer_id WHERE c.id = $1",
    )
    .bind(&id)
    .fetch_optional(db.reader())
    .await
    .map_err(failed)?
    else {
        return Ok(None);
    };
    let refundable = crate::billing::refunds::refundable(db, &id)
        .await
        .map_err(|e| super::internal("reading a payment failed", e))?;
    let refunds = sqlx::query(
        "SELECT f.id, f.created, f.amount, f.status, f.reason, r.admin_email, r.note FROM refunds f \
         LEFT JOIN refund_requests r ON r.refund_id = f.id WHERE f.charge_id = $1 ORDER BY f.created DESC, f.id",
    )
    .bind(&id)
    .fetch_all(db.reader())
    .await
    .map_err(failed)?
    .iter()
    .map(|r| {
        Ok(RefundRow {
            id: r.try_get("id")?,
            created: r.try_get("created")?,
            amount: r.try_get::<Option<i64>, _>("amount")?.unwrap_or(0),
            status: r.try_get("status")?,
            reason: r.try_get("reason")?,
            requested_by: r.try_get("admin_email")?,
            note: r.try_get("note")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()
    .map_err(failed)?;
    let card = match (
        row.try_get::<Option<String>, _>("card_brand").map_err(failed)?,
        row.try_get::<Option<String>, _>("card_last4").map_err(failed)?,
    ) {
        (Some(brand), Some(last4)) => Some(format!("{brand} •••• {last4}")),
        _ => None,
    };
    let checking: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refund_requests WHERE charge_id = $1 AND status = 'unknown'",
    )
    .bind(&id)
    .fetch_one(db.reader())
    .await
    .map_err(failed)?;
    let r = refundable.unwrap_or(crate::billing::refunds::Refundable {
        captured: 0,
        refunded: 0,
        in_flight: 0,
        remaining: 0,
        currency: "usd".into(),
        status: String::new(),
    });
    Ok(Some(PaymentView {
        id: row.try_get("id").map_err(failed)?,
        created: row.try_get("created").map_err(failed)?,
        status: row.try_get("status").map_err(failed)?,
        amount: row.try_get::<Option<i64>, _>("amount").map_err(failed)?.unwrap_or(0),
        currency: r.currency.clone(),
        refunded: r.refunded,
        remaining: if r.status == "succeeded" { r.remaining } else { 0 },
        checking,
        customer_id: row.try_get("customer_id").map_err(failed)?,
        customer_email: row.try_get("email").map_err(failed)?,
        card,
        failure: row.try_get("failure_message").map_err(failed)?,
        refunds,
        form_key: uuid::Uuid::new_v4().simple().to_string(),
        stripe_ready: state.config.stripe_mode().is_some(),
    }))
}
