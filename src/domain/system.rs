//! Whether the installation is complete: what the overview's set-up checklist and Settings show.

use serde::{Deserialize, Serialize};

/// The effective configuration with every secret left out, plus what the database holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstallStatus {
    pub version: String,
    /// "test" or "live" when a Stripe key is set.
    pub stripe_mode: Option<String>,
    pub webhook_secret_count: usize,
    pub stripe_api_base: String,
    pub public_base_url: String,
    pub database_backend: String,
    pub database_location: String,
    /// When this database was first set up (Unix seconds).
    pub installed_at: Option<i64>,
    /// Events that failed for good.
    pub webhook_failed: i64,
    /// When the last webhook arrived (Unix seconds).
    pub last_webhook_at: Option<i64>,
    /// Set when webhooks are configured but none arrived for longer than WEBHOOK_SILENCE_WARNING.
    pub webhook_silent_for: Option<i64>,
    /// Subscriptions whose items (invoices whose lines) Stripe sent only in part, not yet fetched.
    pub incomplete_subscriptions: i64,
    pub incomplete_invoices: i64,
}

impl InstallStatus {
    pub fn stripe_configured(&self) -> bool {
        self.stripe_mode.is_some()
    }

    pub fn webhooks_configured(&self) -> bool {
        self.webhook_secret_count > 0
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/stripe/webhook", self.public_base_url.trim_end_matches('/'))
    }
}
