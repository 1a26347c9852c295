//! One module per route.

pub mod accounts;
pub mod admins;
pub mod api_keys;
pub mod audit;
pub mod customers;
pub mod definitions;
pub mod login;
pub mod not_found;
pub mod overview;
pub mod payment;
pub mod payments;
pub mod pricing;
pub mod revenue;
pub mod settings;
pub mod stripe_sync;
pub mod subscriptions;
pub mod webhooks;
