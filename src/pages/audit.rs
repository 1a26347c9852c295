//! Settings → Audit log: who did what, filtered by admin, action and date. Filters live in the
//! URL (a GET form), so a filtered view can be shared and works with JavaScript off.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::audit::list_audit;

use crate::components::query::carry;
use crate::components::settings_tabs::SettingsTabs;
use crate::components::table::DataTable;
use crate::components::time::format_utc;
use crate::domain::audit::{AuditPage, AuditRow};

#[component]
pub fn AuditPageView() -> impl IntoView {
    let query = use_query_map();
    let param = move |key: &str| query.with(|q| q.get(key)).filter(|v| !v.is_empty());
    let page = Resource::new(
        move || {
            (
                param("admin"),
                param("action"),
                param("from"),
                param("until"),
                param("before"),
            )
        },
        |(admin, action, from, until, before)| {
            list_audit(admin, action, from, until, before.and_then(|b| b.parse().ok()))
        },
    );
    view! {
        <Title text="Audit log"/>
        <div class="page-header">
            <h1>"Settings"</h1>
        </div>
        <SettingsTabs/>
        <section class="card">
            <h2>"Audit log"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    page.await.map(|p| view! { <AuditView page=p current=query.get_untracked()/> })
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn AuditView(page: AuditPage, current: leptos_router::params::ParamsMap) -> impl IntoView {
    let value = |key: &str| current.get(key).unwrap_or_default();
    let chosen_action = value("action");
    let next_link = page.next_before.map(|before| {
        let query = carry(
            &current,
            &["admin", "action", "from", "until"],
            ("before", &before.to_string()),
        );
        view! { <a class="button secondary" href=format!("/settings/audit?{query}")>"Older entries"</a> }
    });
    let empty = page.entries.is_empty();
    view! {
        <form method="get" action="/settings/audit" class="filters">
            <label>"Admin" <input type="email" name="admin" value=value("admin") placeholder="email"/></label>
            <label>
                "Action"
                <select name="action">
                    <option value="">"All"</option>
                    {page
                        .actions
                        .into_iter()
                        .map(|a| {
                            let selected = a == chosen_action;
                            view! { <option value=a.clone() selected=selected>{a.clone()}</option> }
                        })
                        .collect_view()}
                </select>
            </label>
            <label>"From" <input type="date" name="from" value=value("from")/></label>
            <label>"Until" <input type="date" name="until" value=value("until")/></label>
            <button type="submit" class="button secondary">"Filter"</button>
        </form>
        {if empty {
            view! { <p class="muted">"No entries match these filters."</p> }.into_any()
        } else {
            view! {
                <DataTable headers=&["When (UTC)", "Admin", "Action", "Target", "Outcome", "Address", "Request"] class="cards">
                    {page.entries.into_iter().map(entry_row).collect_view()}
                </DataTable>
            }
                .into_any()
        }}
        {next_link}
    }
}

fn entry_row(e: AuditRow) -> impl IntoView {
    let outcome_class = format!("outcome outcome-{}", e.outcome);
    view! {
        <tr>
            <td class="nowrap" data-label="When">{format_utc(e.at)}</td>
            <td data-label="Admin">{e.admin_email.unwrap_or_else(|| "—".into())}</td>
            <td data-label="Action"><code>{e.action}</code></td>
            <td data-label="Target">{e.target.unwrap_or_default()} {e.detail.map(|d| view! { <span class="muted small">" " {d}</span> })}</td>
            <td data-label="Outcome"><span class=outcome_class>{e.outcome}</span></td>
            <td data-label="Address">{e.client_addr.unwrap_or_default()}</td>
            <td class="muted small mono" data-label="Request">{e.request_id.unwrap_or_default()}</td>
        </tr>
    }
}
