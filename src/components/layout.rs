//! The frame around every page: brand, navigation, content, and the error page for failures.

use leptos::prelude::*;
use leptos_router::components::A;

use super::error_page::ErrorPage;

const NAV: [(&str, &str); 7] = [
    ("/", "Overview"),
    ("/customers", "Customers"),
    ("/subscriptions", "Subscriptions"),
    ("/payments", "Payments"),
    ("/revenue", "Revenue"),
    ("/webhooks", "Webhooks"),
    ("/settings", "Settings"),
];

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    // The navigation collapses behind a button on narrow screens.
    let (menu_open, set_menu_open) = signal(false);
    view! {
        <div class="app">
            <header class="topbar">
                <a class="brand" href="/">
                    <img src="/favicon.svg" alt="" width="24" height="24"/>
                    <span>"Tally"</span>
                </a>
                <button
                    class="menu-toggle"
                    type="button"
                    aria-controls="primary-nav"
                    aria-expanded=move || menu_open.get().to_string()
                    on:click=move |_| set_menu_open.update(|open| *open = !*open)
                >
                    <span class="visually-hidden">"Menu"</span>
                    <span class="menu-icon" aria-hidden="true"></span>
                </button>
                <nav id="primary-nav" class="nav" class:open=move || menu_open.get() aria-label="Main">
                    {NAV
                        .iter()
                        .map(|(href, label)| {
                            view! {
                                <A href=*href exact=true on:click=move |_| set_menu_open.set(false)>
                                    {*label}
                                </A>
                            }
                        })
                        .collect_view()}
                </nav>
            </header>
            <main class="content">
                <ErrorBoundary fallback=|errors| view! { <ErrorPage errors/> }>{children()}</ErrorBoundary>
            </main>
        </div>
    }
}
