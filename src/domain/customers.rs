//! Customers as pages show them: the list rows and one customer's billing history.

use serde::{Deserialize, Serialize};

pub const PAGE_SIZE: i64 = 50;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRow {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created: Option<i64>,
    pub deleted: bool,
    pub active_subscriptions: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRow {
    pub id: String,
    pub status: Option<String>,
    pub currency: Option<String>,
    pub cancel_at_period_end: bool,
    pub current_period_end: Option<i64>,
    /// "Pro · monthly + 1 more item".
    pub plan: String,
    /// Units over all its items.
    pub quantity: i64,
    /// In minor units of `currency`.
    pub mrr: Option<i64>,
    /// Stripe sent only the first page of its items; MRR counts only those until the rest is
    /// fetched.
    pub items_incomplete: bool,
}

/// A money-bearing row (invoice, charge, refund, dispute) with its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyRow {
    pub id: String,
    pub created: Option<i64>,
    pub status: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethodRow {
    pub id: String,
    pub kind: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDetail {
    pub customer: CustomerRow,
    pub subscriptions: Vec<SubscriptionRow>,
    pub invoices: Vec<MoneyRow>,
    pub charges: Vec<MoneyRow>,
    pub refunds: Vec<MoneyRow>,
    pub disputes: Vec<MoneyRow>,
    pub payment_methods: Vec<PaymentMethodRow>,
    pub events: Vec<crate::domain::events::EventRow>,
    /// Fixed per page view: the idempotency key of the page's Stripe actions derives from it.
    pub form_token: String,
    /// A Stripe key is configured, so the page's Stripe actions can run.
    #[serde(default)]
    pub stripe_ready: bool,
}
