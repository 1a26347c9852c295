//! What every request handler and server function can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::config::Config;
use crate::db::Db;

#[derive(Clone, Debug, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<Config>,
    pub db: Db,
    /// Woken when an event is stored, so the worker applies it at once.
    pub events: Arc<tokio::sync::Notify>,
    /// Stripe's API (or a stand-in in tests).
    pub stripe: Arc<dyn crate::stripe::StripeApi>,
    /// The key that signs customers' billing-portal links.
    pub link_secret: Arc<crate::config::Secret>,
    /// Stores webhook deliveries in shared transactions (group commit).
    pub inbox: Arc<crate::webhooks::inbox::GroupCommit>,
    /// Per-API-key request budgets for /api/v1.
    pub api_limiter: Arc<crate::billing::api_v1::KeyLimiter>,
}

impl AppState {
    /// The state inside a server function or a component rendered on the server.
    pub fn from_context() -> Result<Self, leptos::prelude::ServerFnError> {
        leptos::prelude::use_context::<Self>()
            .ok_or_else(|| leptos::prelude::ServerFnError::new("server state is missing"))
    }
}
