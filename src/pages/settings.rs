//! Settings: the effective configuration of this installation, secrets left out.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::system::system_status;

use crate::components::settings_tabs::SettingsTabs;
use crate::components::time::format_utc;
use crate::domain::system::InstallStatus;

#[component]
pub fn SettingsPage() -> impl IntoView {
    let status = Resource::new(|| (), |_| system_status());
    view! {
        <Title text="Settings"/>
        <div class="page-header">
            <h1>"Settings"</h1>
        </div>
        <SettingsTabs/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move { status.await.map(|s| view! { <ConfigTable status=s/> }) })}
        </Suspense>
    }
}

#[component]
fn ConfigTable(status: InstallStatus) -> impl IntoView {
    let stripe = match &status.stripe_mode {
        Some(mode) => format!("Configured ({mode} mode)"),
        None => "Not configured: set STRIPE_SECRET_KEY".to_string(),
    };
    let webhooks = match status.webhook_secret_count {
        0 => "Not configured: set STRIPE_WEBHOOK_SECRET".to_string(),
        n => format!(
            "{n} signing secret{} at {}",
            if n == 1 { "" } else { "s" },
            status.webhook_url()
        ),
    };
    let installed = status.installed_at.map(format_utc).unwrap_or_else(|| "unknown".into());
    let rows = [
        ("Stripe API key", stripe),
        ("Webhook signing", webhooks),
        ("Stripe API base", status.stripe_api_base.clone()),
        ("Public URL", status.public_base_url.clone()),
        (
            "Database",
            format!("{} ({})", status.database_backend, status.database_location),
        ),
        ("Set up", installed),
        ("Version", status.version.clone()),
    ];
    view! {
        <section class="card">
            <h2>"Configuration"</h2>
            <p class="muted">"Read from the environment at start. Secrets are never shown."</p>
            <dl class="config-list">
                {rows
                    .into_iter()
                    .map(|(label, value)| view! { <dt>{label}</dt><dd>{value}</dd> })
                    .collect_view()}
            </dl>
        </section>
    }
}
