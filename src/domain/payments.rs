//! One payment as its page shows it, with its refunds.

use serde::{Deserialize, Serialize};

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
