//! Settings → Stripe accounts: the accounts Tally knows, where their events come from; owners add,
//! rename, disable and enable them (docs/accounts.md).

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::accounts::{
    connected_accounts, list_accounts, AddAccount, CheckAccount, RenameAccount, SetAccountDisabled,
};
use crate::components::notice::action_message;
use crate::components::settings_tabs::SettingsTabs;
use crate::components::table::TableCard;
use crate::components::time::format_utc;
use crate::domain::accounts::{Account, AccountKind, ConnectedAccount};
use crate::domain::money;

#[component]
pub fn AccountsPage() -> impl IntoView {
    let add = ServerAction::<AddAccount>::new();
    let rename = ServerAction::<RenameAccount>::new();
    let disable = ServerAction::<SetAccountDisabled>::new();
    let check = ServerAction::<CheckAccount>::new();
    let page = Resource::new(
        move || (add.version().get(), rename.version().get(), disable.version().get()),
        |_| list_accounts(),
    );
    let connected = Resource::new(|| (), |_| connected_accounts());
    view! {
        <Title text="Stripe accounts"/>
        <div class="page-header"><h1>"Settings"</h1></div>
        <SettingsTabs/>
        {action_message(add)}
        {action_message(rename)}
        {action_message(disable)}
        {action_message(check)}
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                page.await.map(|p| {
                    let empty = p.accounts.is_empty();
                    let manage = p.can_manage;
                    let add_form = manage.then(|| add_card(add, p.secrets_key_set, p.webhook_url.clone()));
                    view! {
                        <TableCard title="Accounts" headers=&["Account", "Mode", "Reached", "Webhook secrets", "Added", ""] class="cards" empty>
                            {p.accounts.into_iter().map(|a| account_row(a, manage, Actions { rename, disable, check })).collect_view()}
                        </TableCard>
                        {add_form}
                    }
                })
            })}
        </Suspense>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                connected.await.map(|list| (!list.is_empty()).then(|| connected_card(list)))
            })}
        </Suspense>
    }
}

/// Stripe Connect: each connected account with its last 30 days and its MRR, per currency; a
/// click opens Tally's pages for that account alone.
fn connected_card(list: Vec<ConnectedAccount>) -> impl IntoView {
    let rows = list
        .into_iter()
        .map(|a| {
            let open = format!("/?account={}", crate::components::query::encode(&a.id));
            let figures = if a.figures.is_empty() {
                view! { <td data-label="Figures" colspan="4" class="muted">"No payments or subscriptions yet"</td> }
                    .into_any()
            } else {
                let per = |f: fn(&crate::domain::accounts::ConnectedFigures) -> i64| {
                    a.figures
                        .iter()
                        .map(|x| money::format(f(x), &x.currency))
                        .collect::<Vec<_>>()
                        .join(" · ")
                };
                view! {
                    <td data-label="Volume (30 days)" class="num">{per(|f| f.volume_30d)}</td>
                    <td data-label="MRR" class="num">{per(|f| f.mrr)}</td>
                    <td data-label="Application fees (30 days)" class="num">{per(|f| f.fees_30d)}</td>
                }
                .into_any()
            };
            view! {
                <tr id=format!("connected-{}", a.id)>
                    <td data-label="Account">
                        <a href=open>{a.name.clone()}</a>
                        <br/>
                        <code class="muted small">{a.id.clone()}</code>
                        {a.disabled.then(|| view! { <span class="badge">"disabled"</span> })}
                    </td>
                    {figures}
                </tr>
            }
        })
        .collect_view();
    view! {
        <TableCard title="Connected accounts" headers=&["Account", "Volume (30 days)", "MRR", "Application fees (30 days)"] numeric=&[1, 2, 3] class="cards" empty=false>
            {rows}
        </TableCard>
        <p class="muted small">"Volume: succeeded payments' captured amounts. Application fees: what the platform collected from the account, less refunded fees. Each currency on its own."</p>
    }
}

/// What a row's buttons do.
#[derive(Clone, Copy)]
struct Actions {
    rename: ServerAction<RenameAccount>,
    disable: ServerAction<SetAccountDisabled>,
    check: ServerAction<CheckAccount>,
}

fn account_row(a: Account, manage: bool, actions: Actions) -> impl IntoView {
    let Actions { rename, disable, check } = actions;
    let reached = match (a.kind, a.platform_id.as_deref(), a.source.as_str()) {
        (AccountKind::Connected, Some(platform), _) => format!("Connect, through {platform}"),
        (AccountKind::Connected, None, _) => "Connect, through the environment's account".to_string(),
        (AccountKind::Direct, _, "environment") => "Its own key (STRIPE_SECRET_KEY)".to_string(),
        (AccountKind::Direct, _, _) => "Its own key (sealed)".to_string(),
    };
    let secrets = match (a.kind, a.source.as_str()) {
        (AccountKind::Direct, "environment") => "STRIPE_WEBHOOK_SECRET".to_string(),
        (AccountKind::Connected, _) => "the platform's".to_string(),
        _ => a.webhook_secrets.to_string(),
    };
    let status = if a.disabled {
        view! { <span class="status tone-bad">"Disabled"</span> }.into_any()
    } else {
        view! { <span class="status tone-good">"Enabled"</span> }.into_any()
    };
    // Only an account added here verifies with its own secrets, so only it can be switched off
    // here: the environment's comes from STRIPE_WEBHOOK_SECRET, a connected one's events arrive on
    // its platform's endpoint.
    let switchable = a.kind == AccountKind::Direct && a.source != "environment";
    let (name_id, current_name) = (format!("name-{}", a.id), a.name.clone());
    let check_id = a.id.clone();
    let actions = manage.then(|| {
        let (id, id2) = (a.id.clone(), a.id.clone());
        let (label, value) = if a.disabled { ("Enable", "false") } else { ("Disable", "true") };
        view! {
            <div class="row-actions">
                <ActionForm action=rename attr:class="row-form">
                    <input type="hidden" name="id" value=id/>
                    <label class="visually-hidden" for=name_id.clone()>"Name"</label>
                    <input type="text" name="name" id=name_id value=current_name maxlength="100" required/>
                    <button type="submit" class="button secondary">"Rename"</button>
                </ActionForm>
                {switchable.then(|| view! {
                    <ActionForm action=disable attr:class="row-form">
                        <input type="hidden" name="id" value=id2/>
                        <input type="hidden" name="disabled" value=value/>
                        <button type="submit" class=if value == "false" { "button secondary" } else { "button danger" }>{label}</button>
                    </ActionForm>
                })}
            </div>
        }
    });
    view! {
        <tr id=a.id.clone()>
            <td data-label="Account">
                <div>
                    <strong>{a.name.clone()}</strong> " " {status}
                    <div class="mono small muted">{a.id.clone()}</div>
                </div>
            </td>
            <td data-label="Mode">{a.mode_label()}</td>
            <td class="small" data-label="Reached">{reached}</td>
            <td class="small" data-label="Webhook secrets">{secrets}</td>
            <td class="small" data-label="Added">{format_utc(a.created_at)}</td>
            <td>
                <div class="row-actions">
                    <ActionForm action=check attr:class="row-form">
                        <input type="hidden" name="id" value=check_id/>
                        <button type="submit" class="button secondary">"Check"</button>
                    </ActionForm>
                    {actions}
                </div>
            </td>
        </tr>
    }
}

fn add_card(add: ServerAction<AddAccount>, secrets_key_set: bool, webhook_url: String) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Add an account"</h2>
            <p class="muted">
                "Another Stripe account of yours (another entity or region, or test beside live). Tally asks Stripe "
                "which account the key belongs to, and keeps the key and webhook secrets sealed. In that account's "
                "dashboard, add a webhook endpoint for " <code>{webhook_url}</code> " and paste its signing secret here."
            </p>
            {if secrets_key_set {
                view! {
                    <ActionForm action=add attr:class="inline-form">
                        <label>"Name " <input type="text" name="name" placeholder="Acme EU (default: its name at Stripe)" maxlength="100"/></label>
                        <label>"Secret or restricted key " <input type="password" name="secret_key" autocomplete="off" placeholder="sk_live_… or rk_live_…" required/></label>
                        <label>"Webhook signing secrets " <input type="password" name="webhook_secrets" autocomplete="off" placeholder="whsec_… (several: separate with commas)"/></label>
                        <button type="submit" class="button primary">"Add account"</button>
                    </ActionForm>
                }.into_any()
            } else {
                view! {
                    <p class="form-error" role="alert">
                        "Set TALLY_SECRETS_KEY (64 hex characters: " <code>"openssl rand -hex 32"</code>
                        ") and restart Tally to add accounts: their keys are stored sealed with it."
                    </p>
                }.into_any()
            }}
        </section>
    }
}
