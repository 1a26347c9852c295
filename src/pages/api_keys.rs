//! Settings → API keys (owners): keys for the payments API under /api/v1.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::api_keys::{list_api_keys, CreateApiKey, RevokeApiKey};
use crate::components::notice::{action_message, action_outcome};
use crate::components::settings_tabs::SettingsTabs;
use crate::components::table::TableCard;
use crate::components::time::format_utc;

#[component]
pub fn ApiKeysPage() -> impl IntoView {
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    let keys = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_api_keys(),
    );
    view! {
        <Title text="API keys"/>
        <div class="page-header"><h1>"Settings"</h1></div>
        <SettingsTabs/>
        {move || action_outcome(create).map(|r| match r {
            Ok(key) => view! {
                <div class="notice" role="status">
                    <p>"Your new key. Copy it now: it is not shown again."</p>
                    <p><code class="secret" data-test="new-key">{key}</code></p>
                </div>
            }.into_any(),
            Err(e) => view! { <p class="form-error" role="alert">{e}</p> }.into_any(),
        })}
        {action_message(revoke)}
        <section class="card">
            <h2>"New key"</h2>
            <p class="muted">
                "Keys let your own backend or app call the payments API (" <a href="/api/v1/openapi.json">"OpenAPI"</a>
                "): create customers, PaymentIntents with ephemeral keys, and subscriptions, without holding your Stripe key."
            </p>
            <ActionForm action=create attr:class="inline-form">
                <label>"Name " <input type="text" name="name" placeholder="iOS app" maxlength="80" required/></label>
                <button type="submit" class="button primary">"Create key"</button>
            </ActionForm>
        </section>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                keys.await.map(|keys| {
                    let empty = keys.is_empty();
                    view! {
                        <TableCard title="Keys" headers=&["Name", "Key", "Created", "Last used", ""] class="cards" empty>
                            {keys.into_iter().map(|k| view! {
                                <tr>
                                    <td data-label="Name">{k.name}</td>
                                    <td class="mono small" data-label="Key">{k.prefix} "…"</td>
                                    <td class="small" data-label="Created">{format_utc(k.created_at)} " by " {k.created_by}</td>
                                    <td class="small" data-label="Last used">{k.last_used_at.map(format_utc).unwrap_or_else(|| "never".into())}</td>
                                    <td>
                                        {match k.revoked_at {
                                            Some(at) => view! { <span class="muted small">"revoked " {format_utc(at)}</span> }.into_any(),
                                            None => view! {
                                                <ActionForm action=revoke attr:class="inline-form">
                                                    <input type="hidden" name="id" value=k.id/>
                                                    <button type="submit" class="button danger">"Revoke"</button>
                                                </ActionForm>
                                            }.into_any(),
                                        }}
                                    </td>
                                </tr>
                            }).collect_view()}
                        </TableCard>
                    }
                })
            })}
        </Suspense>
    }
}
