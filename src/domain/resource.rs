//! The Stripe resources Tally keeps: each one's `object` name and the table that holds it.

use serde_json::Value;

/// The Stripe resources Tally projects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Customer,
    PaymentMethod,
    Product,
    Price,
    Subscription,
    Invoice,
    PaymentIntent,
    Charge,
    Refund,
    Dispute,
    CheckoutSession,
    Coupon,
    PromotionCode,
    Discount,
    /// A Connect platform's fee on a connected account's payment.
    ApplicationFee,
}

impl Resource {
    pub const ALL: [Resource; 15] = [
        Resource::Customer,
        Resource::PaymentMethod,
        Resource::Product,
        Resource::Price,
        Resource::Subscription,
        Resource::Invoice,
        Resource::PaymentIntent,
        Resource::Charge,
        Resource::Refund,
        Resource::Dispute,
        Resource::CheckoutSession,
        Resource::Coupon,
        Resource::PromotionCode,
        Resource::Discount,
        Resource::ApplicationFee,
    ];

    /// The resource a Stripe object belongs to, from its `object` field.
    pub fn of_object(object: &Value) -> Option<Self> {
        Some(match object.get("object")?.as_str()? {
            "customer" => Resource::Customer,
            "payment_method" => Resource::PaymentMethod,
            "product" => Resource::Product,
            "price" => Resource::Price,
            "subscription" => Resource::Subscription,
            "invoice" => Resource::Invoice,
            "payment_intent" => Resource::PaymentIntent,
            "charge" => Resource::Charge,
            "refund" => Resource::Refund,
            "dispute" => Resource::Dispute,
            "checkout.session" => Resource::CheckoutSession,
            "coupon" => Resource::Coupon,
            "promotion_code" => Resource::PromotionCode,
            "discount" => Resource::Discount,
            "application_fee" => Resource::ApplicationFee,
            _ => return None,
        })
    }

    pub fn table(self) -> &'static str {
        match self {
            Resource::Customer => "customers",
            Resource::PaymentMethod => "payment_methods",
            Resource::Product => "products",
            Resource::Price => "prices",
            Resource::Subscription => "subscriptions",
            Resource::Invoice => "invoices",
            Resource::PaymentIntent => "payment_intents",
            Resource::Charge => "charges",
            Resource::Refund => "refunds",
            Resource::Dispute => "disputes",
            Resource::CheckoutSession => "checkout_sessions",
            Resource::Coupon => "coupons",
            Resource::PromotionCode => "promotion_codes",
            Resource::Discount => "discounts",
            Resource::ApplicationFee => "application_fees",
        }
    }

    /// The resource whose table is `table`.
    pub fn from_table(table: &str) -> Option<Self> {
        Resource::ALL.into_iter().find(|r| r.table() == table)
    }
}
