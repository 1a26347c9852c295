use leptos::prelude::*;
use leptos_router::components::A;

/// Sub-navigation of the Settings section.
#[component]
pub fn SettingsTabs() -> impl IntoView {
    view! {
        <nav class="tabs" aria-label="Settings">
            <A href="/settings" exact=true>"Configuration"</A>
            <A href="/settings/admins">"Admins"</A>
            <A href="/settings/audit">"Audit log"</A>
        </nav>
    }
}
