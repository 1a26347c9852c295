//! What every request handler and server function can reach.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    pub public_limiter: Arc<KeyLimiter>,
    /// The key that signs customers' billing-portal links.
    pub link_secret: Arc<crate::config::Secret>,
    /// The webhook signing secrets of accounts added in Settings or with the command line.
    pub account_secrets: Arc<crate::webhooks::endpoints::AccountSecrets>,
    /// Stores webhook deliveries in shared transactions (group commit).
    pub inbox: Arc<crate::webhooks::inbox::GroupCommit>,
    /// Per-API-key request budgets for /api/v1.
    pub api_limiter: Arc<KeyLimiter>,
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

/// At most `max` requests per key in each window (a second for API keys, a minute for client
/// addresses).
#[derive(Debug)]
pub struct KeyLimiter {
    max: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl KeyLimiter {
    pub fn new(per_second: u32) -> Self {
        Self::per_window(per_second, Duration::from_secs(1))
    }

    pub fn per_window(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this key may make one more request now.
    pub fn allow(&self, key_id: &str) -> bool {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let (start, count) = windows.entry(key_id.to_string()).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        if *count >= self.max {
            return false;
        }
        *count += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_allows_a_burst_per_second_per_key() {
        let limiter = KeyLimiter::new(3);
        assert!((0..3).all(|_| limiter.allow("a")));
        assert!(!limiter.allow("a"));
        assert!(limiter.allow("b"), "keys are limited separately");
    }
}
