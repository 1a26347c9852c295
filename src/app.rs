//! The document shell and the route table.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{ParamSegment, SsrMode, StaticSegment};

use crate::components::layout::Layout;
use crate::pages::{
    accounts::AccountsPage,
    admins::AdminsPage,
    api_keys::ApiKeysPage,
    audit::AuditPageView,
    customers::{CustomerPage, CustomersPage},
    definitions::DefinitionsPage,
    login::LoginPage,
    not_found::NotFound,
    overview::OverviewPage,
    payment::PaymentPage,
    payments::{DisputesPage, InvoicesPage, PaymentsPage, RefundsPage},
    pricing::{CheckoutCancelPage, CheckoutSuccessPage, PricingPage},
    revenue::RevenuePage,
    settings::SettingsPage,
    stripe_sync::StripeSyncPage,
    subscriptions::SubscriptionsPage,
    webhooks::{WebhookEventPage, WebhooksPage},
};

/// The HTML document around the app, rendered on the server only.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    use leptos_meta::MetaTags;
    // Linked here, on the server, where the bundle's hashed file names are known.
    let stylesheet = crate::site::stylesheet_href(&options);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="stylesheet" id="tally-css" href=stylesheet/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Scripts run only from this origin or with this response's nonce (set on the server).
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(response)) = (use_nonce(), use_context::<leptos_axum::ResponseOptions>()) {
        let targets = use_context::<crate::state::AppState>()
            .map(|state| crate::auth::server::middleware::form_targets(&state.config))
            .unwrap_or_default();
        let csp = crate::auth::server::middleware::page_csp(&nonce.to_string(), &targets);
        if let Ok(value) = axum::http::HeaderValue::from_str(&csp) {
            response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
        }
    }
    view! {
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Meta name="color-scheme" content="light dark"/>
        <Title formatter=|page: String| if page.is_empty() { "Tally".to_string() } else { format!("{page} · Tally") }/>
        <Router>
            <Layout>
                // Async: every page arrives complete, so it reads the same with JavaScript off.
                <Routes fallback=|| view! { <NotFound/> }>
                    <Route path=StaticSegment("") view=OverviewPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("customers") view=CustomersPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("subscriptions") view=SubscriptionsPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("payments") view=PaymentsPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("revenue") view=RevenuePage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("invoices") view=InvoicesPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("refunds") view=RefundsPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("disputes") view=DisputesPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("definitions") view=DefinitionsPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("webhooks") view=WebhooksPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("settings") view=SettingsPage ssr=SsrMode::Async/>
                    <Route
                        path=(StaticSegment("settings"), StaticSegment("admins"))
                        view=AdminsPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("settings"), StaticSegment("sync"))
                        view=StripeSyncPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("settings"), StaticSegment("audit"))
                        view=AuditPageView
                        ssr=SsrMode::Async
                    />
                    <Route path=StaticSegment("login") view=LoginPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("pricing") view=PricingPage ssr=SsrMode::Async/>
                    <Route
                        path=(StaticSegment("checkout"), StaticSegment("success"))
                        view=CheckoutSuccessPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("checkout"), StaticSegment("cancel"))
                        view=CheckoutCancelPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("payments"), ParamSegment("id"))
                        view=PaymentPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("settings"), StaticSegment("accounts"))
                        view=AccountsPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("settings"), StaticSegment("api-keys"))
                        view=ApiKeysPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("customers"), ParamSegment("id"))
                        view=CustomerPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("webhooks"), ParamSegment("id"))
                        view=WebhookEventPage
                        ssr=SsrMode::Async
                    />
                </Routes>
            </Layout>
        </Router>
    }
}
