//! The calls Tally makes to change things at Stripe, shaped by async-stripe's typed request
//! builders and sent through `StripeApi` (so retries, the idempotency key and the request id are
//! handled in one place). Each returns Stripe's JSON and request id.

use std::collections::HashMap;
use std::str::FromStr;

use stripe_client_core::StripeRequest;

use super::{RequestBuilder, StripeApi, StripeApiError, StripeResponse};

fn currency(code: &str) -> stripe_types::Currency {
    // Infallible: an unknown code becomes `Unknown`, which Stripe then refuses by name.
    stripe_types::Currency::from_str(&code.to_ascii_lowercase()).unwrap_or(stripe_types::Currency::USD)
}

fn build(request: &impl StripeRequest) -> RequestBuilder {
    request.build()
}

/// A Checkout Session for one price.
#[derive(Clone, Debug)]
pub struct CheckoutParams<'a> {
    pub price_id: &'a str,
    /// Subscription mode for recurring prices, payment mode for one-time ones.
    pub recurring: bool,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    /// Ties the session back to the page that created it (also in metadata).
    pub reference: &'a str,
    pub idempotency_key: &'a str,
}

pub async fn create_checkout_session(
    api: &dyn StripeApi,
    p: &CheckoutParams<'_>,
) -> Result<StripeResponse, StripeApiError> {
    use stripe_checkout::checkout_session::{CreateCheckoutSession, CreateCheckoutSessionLineItems};
    use stripe_shared::CheckoutSessionMode;

    let metadata = HashMap::from([
        ("tally_source".to_string(), "pricing".to_string()),
        ("tally_price".to_string(), p.price_id.to_string()),
        ("tally_reference".to_string(), p.reference.to_string()),
    ]);
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price = Some(p.price_id.to_string());
    item.quantity = Some(1);
    let mode = if p.recurring {
        CheckoutSessionMode::Subscription
    } else {
        CheckoutSessionMode::Payment
    };
    let request = CreateCheckoutSession::new()
        .mode(mode)
        .line_items(vec![item])
        .success_url(p.success_url)
        .cancel_url(p.cancel_url)
        .client_reference_id(p.reference)
        .metadata(metadata);
    api.send(build(&request), Some(p.idempotency_key)).await
}

/// The account the key belongs to (`GET /v1/account`): its id, settings and mode.
pub async fn retrieve_account(api: &dyn StripeApi) -> Result<StripeResponse, StripeApiError> {
    api.send(RequestBuilder::new(super::StripeMethod::Get, "/account"), None)
        .await
}

/// A Checkout Session with what the success page shows: line items and the subscription.
pub async fn retrieve_checkout_session(api: &dyn StripeApi, id: &str) -> Result<StripeResponse, StripeApiError> {
    if !super::valid_id(id) {
        return Err(StripeApiError::not_found());
    }
    let mut request = RequestBuilder::new(super::StripeMethod::Get, format!("/checkout/sessions/{id}"));
    request.query = Some("expand%5B%5D=line_items&expand%5B%5D=subscription".into());
    api.send(request, None).await
}

/// A billing portal session for a customer, returning to `return_url`.
pub async fn create_portal_session(
    api: &dyn StripeApi,
    customer: &str,
    return_url: &str,
) -> Result<StripeResponse, StripeApiError> {
    use stripe_billing::billing_portal_session::CreateBillingPortalSession;
    let request = CreateBillingPortalSession::new()
        .customer(customer)
        .return_url(return_url);
    api.send(build(&request), None).await
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundReason {
    Duplicate,
    Fraudulent,
    RequestedByCustomer,
}

impl RefundReason {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "duplicate" => Some(Self::Duplicate),
            "fraudulent" => Some(Self::Fraudulent),
            "requested_by_customer" => Some(Self::RequestedByCustomer),
            _ => None,
        }
    }
}

/// Refunds `amount` (minor units) of a charge.
pub async fn create_refund(
    api: &dyn StripeApi,
    charge: &str,
    amount: i64,
    reason: Option<RefundReason>,
    metadata: HashMap<String, String>,
    idempotency_key: &str,
) -> Result<StripeResponse, StripeApiError> {
    use stripe_core::refund::{CreateRefund, CreateRefundReason};
    let mut request = CreateRefund::new().charge(charge).amount(amount).metadata(metadata);
    if let Some(reason) = reason {
        request = request.reason(match reason {
            RefundReason::Duplicate => CreateRefundReason::Duplicate,
            RefundReason::Fraudulent => CreateRefundReason::Fraudulent,
            RefundReason::RequestedByCustomer => CreateRefundReason::RequestedByCustomer,
        });
    }
    api.send(build(&request), Some(idempotency_key)).await
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionChange {
    CancelAtPeriodEnd,
    CancelNow,
    Resume,
}

impl SubscriptionChange {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "cancel_at_period_end" => Some(Self::CancelAtPeriodEnd),
            "cancel_now" => Some(Self::CancelNow),
            "resume" => Some(Self::Resume),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CancelAtPeriodEnd => "cancel_at_period_end",
            Self::CancelNow => "cancel_now",
            Self::Resume => "resume",
        }
    }
}

/// Cancel at period end, cancel now, or undo a scheduled cancellation.
pub async fn change_subscription(
    api: &dyn StripeApi,
    subscription: &str,
    change: SubscriptionChange,
    idempotency_key: &str,
) -> Result<StripeResponse, StripeApiError> {
    use stripe_billing::subscription::{CancelSubscription, UpdateSubscription};
    let request = match change {
        SubscriptionChange::CancelAtPeriodEnd => {
            build(&UpdateSubscription::new(subscription).cancel_at_period_end(true))
        }
        SubscriptionChange::Resume => build(&UpdateSubscription::new(subscription).cancel_at_period_end(false)),
        SubscriptionChange::CancelNow => build(&CancelSubscription::new(subscription)),
    };
    api.send(request, Some(idempotency_key)).await
}

/// A customer (for the payments API).
pub async fn create_customer(
    api: &dyn StripeApi,
    email: &str,
    name: Option<&str>,
    idempotency_key: Option<&str>,
) -> Result<StripeResponse, StripeApiError> {
    use stripe_core::customer::CreateCustomer;
    let mut request = CreateCustomer::new().email(email);
    if let Some(name) = name {
        request = request.name(name);
    }
    api.send(build(&request), idempotency_key).await
}

/// A PaymentIntent with automatic payment methods (for the payments API).
pub async fn create_payment_intent(
    api: &dyn StripeApi,
    amount: i64,
    currency_code: &str,
    customer: Option<&str>,
    metadata: HashMap<String, String>,
    idempotency_key: Option<&str>,
) -> Result<StripeResponse, StripeApiError> {
    use stripe_core::payment_intent::{CreatePaymentIntent, CreatePaymentIntentAutomaticPaymentMethods};
    let mut request = CreatePaymentIntent::new(amount, currency(currency_code))
        .automatic_payment_methods(CreatePaymentIntentAutomaticPaymentMethods::new(true))
        .metadata(metadata);
    if let Some(customer) = customer {
        request = request.customer(customer);
    }
    api.send(build(&request), idempotency_key).await
}

/// An ephemeral key for a customer, created with the mobile SDK's API version, as Stripe's mobile
/// payment sheet requires.
pub async fn create_ephemeral_key(
    api: &dyn StripeApi,
    customer: &str,
    stripe_version: &str,
) -> Result<StripeResponse, StripeApiError> {
    use stripe_misc::ephemeral_key::CreateEphemeralKey;
    let request = CreateEphemeralKey::new().customer(customer);
    api.send_versioned(build(&request), None, Some(stripe_version)).await
}

/// A subscription that waits for its first payment (`default_incomplete`), with the first
/// invoice's confirmation secret expanded for the client.
pub async fn create_subscription(
    api: &dyn StripeApi,
    customer: &str,
    price: &str,
    idempotency_key: Option<&str>,
) -> Result<StripeResponse, StripeApiError> {
    use stripe_billing::subscription::{
        CreateSubscription, CreateSubscriptionItems, CreateSubscriptionPaymentBehavior,
        CreateSubscriptionPaymentSettings, CreateSubscriptionPaymentSettingsSaveDefaultPaymentMethod,
    };
    let mut item = CreateSubscriptionItems::new();
    item.price = Some(price.to_string());
    let mut settings = CreateSubscriptionPaymentSettings::new();
    settings.save_default_payment_method =
        Some(CreateSubscriptionPaymentSettingsSaveDefaultPaymentMethod::OnSubscription);
    let request = CreateSubscription::new()
        .customer(customer)
        .items(vec![item])
        .payment_behavior(CreateSubscriptionPaymentBehavior::DefaultIncomplete)
        .payment_settings(settings)
        .expand(vec!["latest_invoice.confirmation_secret".to_string()]);
    api.send(build(&request), idempotency_key).await
}
