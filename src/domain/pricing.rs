//! The public pricing page and the Checkout return, as the browser receives them.

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
    /// The Stripe account selling (`?account=` of the page; `None`: the environment's), carried
    /// by the checkout forms.
    pub account: Option<String>,
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
