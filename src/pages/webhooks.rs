//! Webhooks: every event Stripe sent, its processing state, and a detail view with retry/replay.
//! Filters live in the URL (a GET form), so a view can be shared and works with JavaScript off.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::notice::action_message;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::webhooks::{get_event, list_events, RequeueEvent, RetryFailed};

use crate::components::query::carry;
use crate::components::table::DataTable;
use crate::components::time::format_utc;
use crate::domain::events::{EventList, EventRow, EventStatus};

#[component]
pub fn WebhooksPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |key: &str| query.with(|q| q.get(key)).filter(|v| !v.is_empty());
    let page = Resource::new(
        move || {
            (
                param("type"),
                param("status"),
                param("from"),
                param("until"),
                param("before"),
                param("account"),
            )
        },
        |(event_type, status, from, until, before, account)| {
            list_events(event_type, status, from, until, before, account)
        },
    );
    view! {
        <Title text="Webhooks"/>
        <div class="page-header">
            <h1>"Webhooks"</h1>
        </div>
        <section class="card">
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    page.await.map(|list| view! { <EventTable list current=query.get_untracked()/> })
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn EventTable(list: EventList, current: leptos_router::params::ParamsMap) -> impl IntoView {
    let value = |key: &str| current.get(key).unwrap_or_default();
    let chosen = value("status");
    // Failed events listed: one button queues all of them (of the type filtered on) again.
    let retry_all = (chosen == "failed" && !list.events.is_empty()).then(|| {
        let retry = ServerAction::<RetryFailed>::new();
        let event_type = value("type");
        let label = if event_type.is_empty() {
            "Retry every failed event".to_string()
        } else {
            format!("Retry every failed {event_type} event")
        };
        view! {
            {action_message(retry)}
            <ActionForm action=retry attr:class="inline-form">
                <input type="hidden" name="event_type" value=event_type/>
                <button type="submit" class="button" data-test="retry-failed">{label}</button>
            </ActionForm>
        }
    });
    let next = list.next_before.map(|before| {
        let query = carry(&current, &["type", "status", "from", "until"], ("before", &before));
        view! { <a class="button secondary" href=format!("/webhooks?{query}")>"Older events"</a> }
    });
    let empty = list.events.is_empty();
    view! {
        <form method="get" action="/webhooks" class="filters">
            <crate::components::query::AccountField/>
            <label>"Type" <input type="text" name="type" value=value("type") placeholder="invoice.paid"/></label>
            <label>
                "Status"
                <select name="status">
                    <option value="">"All"</option>
                    {EventStatus::ALL
                        .into_iter()
                        .map(|s| s.as_str())
                        .map(|s| view! { <option value=s selected=s == chosen>{s}</option> })
                        .collect_view()}
                </select>
            </label>
            <label>"From" <input type="date" name="from" value=value("from")/></label>
            <label>"Until" <input type="date" name="until" value=value("until")/></label>
            <button type="submit" class="button secondary">"Filter"</button>
        </form>
        {retry_all}
        {if empty {
            view! {
                <p class="muted">
                    "No events match. Events appear here as Stripe delivers them to /stripe/webhook."
                </p>
            }
                .into_any()
        } else {
            view! {
                <DataTable headers=&["Received (UTC)", "Type", "Object", "Status", "Attempts"] class="events cards">
                    {list.events.into_iter().map(event_row).collect_view()}
                </DataTable>
            }
                .into_any()
        }}
        {next}
    }
}

fn status_badge(e: &EventRow) -> impl IntoView {
    let label = if e.mode_mismatch {
        "other mode"
    } else {
        e.status.as_str()
    };
    view! { <span class=format!("status status-{}", e.status)>{label}</span> }
}

fn event_row(e: EventRow) -> impl IntoView {
    let href = format!("/webhooks/{}", e.id);
    let badge = status_badge(&e);
    view! {
        <tr>
            <td class="nowrap" data-label="Received">{format_utc(e.received_at)}</td>
            <td data-label="Type">
                <a href=href><code>{e.event_type}</code></a>
                {e.account_id.map(|a| view! { <div class="mono small muted" title="Filed under this account">{a}</div> })}
            </td>
            <td class="mono small" data-label="Object">{e.object_id.unwrap_or_default()}</td>
            <td data-label="Status">{badge} {e.last_error.map(|err| view! { <div class="muted small">{err}</div> })}</td>
            <td data-label="Attempts">{e.attempts}</td>
        </tr>
    }
}

#[component]
pub fn WebhookEventPage() -> impl IntoView {
    let params = use_params_map();
    let requeue = ServerAction::<RequeueEvent>::new();
    let event = Resource::new(
        move || {
            (
                params.with(|p| p.get("id")).unwrap_or_default(),
                requeue.version().get(),
            )
        },
        |(id, _)| get_event(id),
    );
    view! {
        <Title text="Webhook event"/>
        <div class="page-header">
            <h1>"Webhook event"</h1>
            <a href="/webhooks">"← All events"</a>
        </div>
        {action_message(requeue)}
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                event
                    .await
                    .map(|found| match found {
                        None => view! { <section class="card"><p>"No event with this id was received."</p></section> }.into_any(),
                        Some(detail) => {
                            let e = detail.event;
                            let can_requeue = e.status.can_requeue() && !e.mode_mismatch;
                            let label = if e.status == EventStatus::Failed { "Retry" } else { "Replay" };
                            let badge = status_badge(&e);
                            view! {
                                <section class="card">
                                    <dl class="config-list">
                                        <dt>"Id"</dt><dd class="mono">{e.id.clone()}</dd>
                                        <dt>"Type"</dt><dd><code>{e.event_type.clone()}</code></dd>
                                        <dt>"Status"</dt><dd>{badge}</dd>
                                        <dt>"Created by Stripe"</dt><dd>{format_utc(e.created)}</dd>
                                        <dt>"Received"</dt><dd>{format_utc(e.received_at)}</dd>
                                        <dt>"Attempts"</dt><dd>{e.attempts}</dd>
                                        <dt>"Mode"</dt><dd>{if e.livemode { "live" } else { "test" }}</dd>
                                        <dt>"Account"</dt>
                                        <dd>{match e.account_id.clone() {
                                            Some(a) => view! { <a class="mono" href=format!("/settings/accounts#{a}")>{a.clone()}</a> }.into_any(),
                                            None => view! { <span>"The environment's (STRIPE_SECRET_KEY)"</span> }.into_any(),
                                        }}</dd>
                                        <dt>"Error"</dt><dd>{e.last_error.clone().unwrap_or_else(|| "—".into())}</dd>
                                    </dl>
                                    {can_requeue.then(|| view! {
                                        <ActionForm action=requeue attr:class="inline-form">
                                            <input type="hidden" name="id" value=e.id.clone()/>
                                            <button type="submit" class="button">{label}</button>
                                        </ActionForm>
                                    })}
                                </section>
                                <section class="card">
                                    <h2>"Payload"</h2>
                                    <pre class="json"><code>{detail.payload}</code></pre>
                                </section>
                            }
                                .into_any()
                        }
                    })
            })}
        </Suspense>
    }
}
