use leptos::prelude::*;
use leptos_router::components::A;

use crate::domain::admins::{CurrentAdmin, Role};

/// The resource the layout provides: who is signed in.
pub type WhoAmI = Resource<Result<Option<CurrentAdmin>, ServerFnError>>;

/// Sub-navigation of the Settings section; each tab only for the roles that may use it.
#[component]
pub fn SettingsTabs() -> impl IntoView {
    let me = use_context::<WhoAmI>();
    view! {
        <Suspense fallback=|| view! { <nav class="tabs" aria-label="Settings"></nav> }>
            {move || Suspend::new(async move {
                let role = match me {
                    Some(me) => me.await.ok().flatten().map(|a| a.role),
                    None => None,
                };
                let allowed = |needed: Role| role.is_some_and(|r| r.allows(needed));
                view! {
                    <nav class="tabs" aria-label="Settings">
                        <A href="/settings" exact=true>"Configuration"</A>
                        <A href="/settings/sync">"Stripe sync"</A>
                        {allowed(Role::Admin).then(|| view! { <A href="/settings/accounts">"Stripe accounts"</A> })}
                        {allowed(Role::Owner).then(|| view! { <A href="/settings/admins">"Admins"</A> })}
                        {allowed(Role::Owner).then(|| view! { <A href="/settings/api-keys">"API keys"</A> })}
                        {allowed(Role::Admin).then(|| view! { <A href="/settings/audit">"Audit log"</A> })}
                    </nav>
                }
            })}
        </Suspense>
    }
}
