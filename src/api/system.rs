//! What the overview and settings pages show about this installation.

use leptos::prelude::*;

use crate::domain::system::InstallStatus;

#[server(endpoint = "system_status")]
pub async fn system_status() -> Result<InstallStatus, ServerFnError> {
    use crate::db::settings;
    use crate::state::AppState;

    crate::auth::server::require_role(crate::domain::admins::Role::Viewer)?;
    let state = AppState::from_context()?;
    let config = &state.config;
    let installed_at = settings::get(&state.db, settings::INSTALLED_AT)
        .await
        .map_err(|e| super::internal("reading settings failed", e))?
        .and_then(|v| v.parse().ok());
    let inbox = crate::db::events::health(&state.db)
        .await
        .map_err(|e| super::internal("reading webhook health failed", e))?;
    let now = crate::db::now_unix();
    let quiet_since = inbox.last_received_at.or(installed_at).unwrap_or(now);
    let webhook_silent_for = (!config.webhook_secrets.is_empty()
        && now - quiet_since > config.webhooks.silence_warning.as_secs() as i64)
        .then_some(now - quiet_since);
    Ok(InstallStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        stripe_mode: config.stripe_mode().map(|m| m.as_str().to_string()),
        webhook_secret_count: config.webhook_secrets.len(),
        stripe_api_base: config.stripe_api_base.to_string(),
        public_base_url: config.public_base_url.to_string(),
        database_backend: config.database_url.backend().as_str().to_string(),
        database_location: config.database_url.redacted(),
        installed_at,
        webhook_failed: inbox.failed,
        last_webhook_at: inbox.last_received_at,
        webhook_silent_for,
        incomplete_subscriptions: inbox.incomplete_subscriptions,
        incomplete_invoices: inbox.incomplete_invoices,
    })
}
