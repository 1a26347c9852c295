//! One module per route.

pub mod customers;
pub mod not_found;
pub mod overview;
pub mod payments;
pub mod revenue;
pub mod settings;
pub mod subscriptions;
pub mod webhooks;
