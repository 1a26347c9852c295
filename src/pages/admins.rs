//! Settings → Admins (owners): who can log in, with which role.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::accounts::account_menu;
use crate::api::admins::{list_admins, ChangeRole, CreateAdmin, LimitAdminAccounts, ResetPassword, SetDisabled};

use crate::components::notice::action_outcome;
use crate::components::settings_tabs::SettingsTabs;
use crate::components::time::format_utc;
use crate::domain::admins::AdminView;
use crate::domain::admins::Role;

#[component]
pub fn AdminsPage() -> impl IntoView {
    let create = ServerAction::<CreateAdmin>::new();
    let role = ServerAction::<ChangeRole>::new();
    let disable = ServerAction::<SetDisabled>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let limit = ServerAction::<LimitAdminAccounts>::new();
    let menu = Resource::new(|| (), |_| account_menu());
    let admins = Resource::new(
        move || {
            (
                create.version().get(),
                role.version().get(),
                disable.version().get(),
                reset.version().get(),
                limit.version().get(),
            )
        },
        |_| list_admins(),
    );
    // The latest outcome of any action, shown above the table.
    let outcome = move || {
        [
            action_outcome(create),
            action_outcome(role),
            action_outcome(disable),
            action_outcome(reset),
            action_outcome(limit),
        ]
        .into_iter()
        .flatten()
        .last()
    };
    view! {
        <Title text="Admins"/>
        <div class="page-header">
            <h1>"Settings"</h1>
        </div>
        <SettingsTabs/>
        {move || {
            outcome()
                .map(|r| match r {
                    Ok(msg) => view! { <p class="notice" role="status">{msg}</p> }.into_any(),
                    Err(e) => view! { <p class="form-error" role="alert">{e}</p> }.into_any(),
                })
        }}
        <section class="card">
            <h2>"Admins"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    admins
                        .await
                        .map(|list| {
                            view! {
                                <div class="table-wrap">
                                    <table class="table cards">
                                        <thead>
                                            <tr>
                                                <th>"Email"</th>
                                                <th>"Role"</th>
                                                <th>"Status"</th>
                                                <th>"Last login"</th>
                                                <th>"Password"</th>
                                                <th>"Stripe accounts"</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {list
                                                .into_iter()
                                                .map(|a| view! { <AdminRow admin=a role disable reset limit/> })
                                                .collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                            }
                        })
                })}
            </Suspense>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let accounts = menu.await.unwrap_or_default();
                    (accounts.len() > 1).then(|| {
                        let listed = accounts
                            .into_iter()
                            .map(|a| format!("{} ({})", a.param, a.name))
                            .collect::<Vec<_>>()
                            .join(", ");
                        view! {
                            <p class="muted small" data-test="account-ids">
                                "Limit an admin or viewer to some Stripe accounts by their ids, separated by commas (empty: every account; owners always see every account): "
                                {listed}
                            </p>
                        }
                    })
                })}
            </Suspense>
        </section>
        <section class="card">
            <h2>"Add an admin"</h2>
            <ActionForm action=create attr:class="inline-form">
                <label>"Email" <input type="email" name="email" required/></label>
                <label>
                    "Password"
                    <input type="password" name="password" minlength="12" required autocomplete="new-password"/>
                </label>
                <label>"Role" <RoleSelect name="role" selected=Role::Viewer/></label>
                <button type="submit" class="button">"Add admin"</button>
            </ActionForm>
            <p class="muted small">"Passwords need at least 12 characters. Viewers read everything; admins can also refund, open billing portals, change subscriptions and sync; owners also manage admins and settings."</p>
        </section>
    }
}

#[component]
fn RoleSelect(name: &'static str, selected: Role) -> impl IntoView {
    view! {
        <select name=name>
            {Role::ALL
                .into_iter()
                .map(|r| view! { <option value=r.as_str() selected=r == selected>{r.as_str()}</option> })
                .collect_view()}
        </select>
    }
}

#[component]
fn AdminRow(
    admin: AdminView,
    role: ServerAction<ChangeRole>,
    disable: ServerAction<SetDisabled>,
    reset: ServerAction<ResetPassword>,
    limit: ServerAction<LimitAdminAccounts>,
) -> impl IntoView {
    let accounts = admin.accounts.join(", ");
    let is_owner = admin.role == Role::Owner;
    let id = admin.id;
    let status = if admin.disabled { "Disabled" } else { "Active" };
    let toggle_to = !admin.disabled;
    let toggle_label = if admin.disabled { "Enable" } else { "Disable" };
    view! {
        <tr class:muted=admin.disabled>
            <td data-label="Email">{admin.email.clone()} {admin.is_you.then(|| view! { <span class="badge">"you"</span> })}</td>
            <td data-label="Role">
                <ActionForm action=role attr:class="row-form">
                    <input type="hidden" name="id" value=id.to_string()/>
                    <RoleSelect name="role" selected=admin.role/>
                    <button type="submit" class="button secondary small">"Change"</button>
                </ActionForm>
            </td>
            <td data-label="Status">
                {status}
                <ActionForm action=disable attr:class="row-form">
                    <input type="hidden" name="id" value=id.to_string()/>
                    <input type="hidden" name="disabled" value=toggle_to.to_string()/>
                    <button type="submit" class="button secondary small">{toggle_label}</button>
                </ActionForm>
            </td>
            <td data-label="Last login">{admin.last_login_at.map(format_utc).unwrap_or_else(|| "never".into())}</td>
            <td data-label="Password">
                <ActionForm action=reset attr:class="row-form">
                    <input type="hidden" name="id" value=id.to_string()/>
                    <input
                        type="password"
                        name="password"
                        minlength="12"
                        required
                        placeholder="New password"
                        autocomplete="new-password"
                    />
                    <button type="submit" class="button secondary small">"Reset"</button>
                </ActionForm>
            </td>
            <td data-label="Stripe accounts">
                {if is_owner {
                    view! { <span class="muted">"every account"</span> }.into_any()
                } else {
                    view! {
                        <ActionForm action=limit attr:class="row-form">
                            <input type="hidden" name="id" value=id.to_string()/>
                            <input
                                type="text"
                                name="accounts"
                                value=accounts
                                placeholder="every account"
                                aria-label=format!("Stripe accounts {} may see", admin.email)
                            />
                            <button type="submit" class="button secondary small">"Limit"</button>
                        </ActionForm>
                    }
                        .into_any()
                }}
            </td>
        </tr>
    }
}
