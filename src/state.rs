//! What every request handler and server function can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::config::Config;
use crate::db::Db;

/// Cloned for every request (each extractor and layer takes its own copy): every field is
/// behind an `Arc`, so a clone is a few reference counts.
#[derive(Clone, Debug, FromRef)]
pub struct AppState {
    pub leptos_options: Arc<LeptosOptions>,
    pub config: Arc<Config>,
    pub db: Db,
    /// Woken when an event is stored, so the worker applies it at once.
    pub events: Arc<tokio::sync::Notify>,
    /// Stripe's API (or a stand-in in tests), for admins, the worker and sync.
    pub stripe: Arc<dyn crate::stripe::StripeApi>,
    /// The same, with its own budget, for anonymous visitors (pricing page, checkout result).
    #[from_ref(skip)]
    pub stripe_public: Arc<dyn crate::stripe::StripeApi>,
    /// Per-client-address budgets for anonymous calls that reach Stripe.
    #[from_ref(skip)]
    pub public_limiter: Arc<crate::billing::api_v1::KeyLimiter>,
    /// The key that signs customers' billing-portal links.
    pub link_secret: Arc<crate::config::Secret>,
    /// Stores webhook deliveries in shared transactions (group commit).
    pub inbox: Arc<crate::webhooks::inbox::GroupCommit>,
    /// Per-API-key request budgets for /api/v1.
    pub api_limiter: Arc<crate::billing::api_v1::KeyLimiter>,
}

/// Leptos's handlers take the options by value; only they pay for the copy.
impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        (*state.leptos_options).clone()
    }
}

impl AppState {
    /// The state inside a server function or a component rendered on the server.
    pub fn from_context() -> Result<Self, leptos::prelude::ServerFnError> {
        leptos::prelude::use_context::<Self>()
            .ok_or_else(|| leptos::prelude::ServerFnError::new("server state is missing"))
    }
}
