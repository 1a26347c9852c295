//! The frame around every page: brand, navigation, who is signed in, content, and the error page.

use leptos::prelude::*;
use leptos_router::components::A;

use super::error_page::ErrorPage;
use crate::api::accounts::account_menu;
use crate::api::auth::whoami;
use crate::domain::accounts::AccountChoice;
use crate::domain::admins::CurrentAdmin;

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
    let me = Resource::new_blocking(|| (), |_| whoami());
    let menu = Resource::new_blocking(|| (), |_| account_menu());
    // Pages that adapt to the admin's role (Settings tabs) read the same resource.
    provide_context(me);
    view! {
        <div class="app">
            <Suspense fallback=|| view! { <header class="topbar"></header> }>
                {move || Suspend::new(async move {
                    let admin = me.await.ok().flatten();
                    let accounts = menu.await.unwrap_or_default();
                    let bar = (admin.is_some() && accounts.len() > 1).then(|| view! { <AccountBar accounts/> });
                    view! {
                        <TopBar admin/>
                        {bar}
                    }
                })}
            </Suspense>
            <main class="content">
                <ErrorBoundary fallback=|errors| view! { <ErrorPage errors/> }>{children()}</ErrorBoundary>
            </main>
        </div>
    }
}

#[component]
fn TopBar(admin: Option<CurrentAdmin>) -> impl IntoView {
    let signed_in = admin.is_some();
    let query = leptos_router::hooks::use_query_map();
    let chosen = query.with_untracked(|q| q.get("account")).filter(|a| !a.is_empty());
    // The chosen account stays in the navigation's links, so a link can be shared.
    let carried = chosen
        .as_ref()
        .map(|a| format!("?account={}", super::query::encode(a)))
        .unwrap_or_default();

    view! {
        <header class="topbar">
            <a class="brand" href="/">
                <img src="/favicon.svg" alt="" width="24" height="24"/>
                <span>"Tally"</span>
            </a>
            {signed_in
                .then(|| {
                    view! {
                        <Menu>
                            {NAV
                                .iter()
                                .map(|(href, label)| {
                                    let exact = *href != "/settings";
                                    let href = if *href == "/settings" {
                                        href.to_string()
                                    } else {
                                        format!("{href}{carried}")
                                    };
                                    view! { <A href=href exact=exact>{*label}</A> }
                                })
                                .collect_view()}
                        </Menu>
                    }
                })}
            {admin
                .map(|a| {
                    view! {
                        <div class="user">
                            <span class="user-email" title=a.role.as_str()>{a.email}</span>
                            <span class="badge">{a.role.as_str()}</span>
                            <form method="post" action="/logout">
                                <button type="submit" class="button secondary small">"Log out"</button>
                            </form>
                        </div>
                    }
                })}
        </header>
    }
}

/// The Stripe account menu, in a bar of its own under the top bar when there is more than one
/// account: a GET form to the same page, so it works without JavaScript; the choice stays in
/// the URL (`?account=`).
#[component]
fn AccountBar(accounts: Vec<AccountChoice>) -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let here = leptos_router::hooks::use_location().pathname.get_untracked();
    let chosen = query.with_untracked(|q| q.get("account")).unwrap_or_default();
    view! {
        <div class="account-bar">
            <form method="get" action=here class="account-switcher" data-test="account-switcher">
                <label for="account-menu">"Stripe account"</label>
                <select id="account-menu" name="account">
                    <option value="all" selected=chosen.is_empty() || chosen == "all">"All accounts"</option>
                    {accounts
                        .into_iter()
                        .map(|a| {
                            let selected = a.param == chosen;
                            let label = match a.kind {
                                crate::domain::accounts::AccountKind::Connected => format!("{} (connected)", a.name),
                                crate::domain::accounts::AccountKind::Direct => a.name.clone(),
                            };
                            view! { <option value=a.param selected=selected>{label}</option> }
                        })
                        .collect_view()}
                </select>
                <button type="submit" class="button secondary small">"Switch"</button>
            </form>
        </div>
    }
}

/// The navigation, folded behind a button on narrow screens: the only part of the frame that runs
/// in the browser. From the server it comes as a plain row of links with the button hidden, so it
/// works before and without JavaScript; once the island runs, narrow screens fold it.
#[island]
fn Menu(children: Children) -> impl IntoView {
    let (menu_open, set_menu_open) = signal(false);
    // Effects run only in the browser, after hydration.
    let (running, set_running) = signal(false);
    Effect::new(move |_| set_running.set(true));
    view! {
        <button
            class="menu-toggle"
            type="button"
            hidden=move || !running.get()
            aria-controls="primary-nav"
            aria-expanded=move || menu_open.get().to_string()
            on:click=move |_| set_menu_open.update(|open| *open = !*open)
        >
            <span class="visually-hidden">"Menu"</span>
            <span class="menu-icon" aria-hidden="true"></span>
        </button>
        <nav
            id="primary-nav"
            class="nav"
            class:foldable=move || running.get()
            class:open=move || menu_open.get()
            aria-label="Main"
        >
            {children()}
        </nav>
    }
}
