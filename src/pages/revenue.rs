//! Revenue: every MRR movement with its subscription, customer and the event that caused it,
//! filtered by kind and month in the URL.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::metrics::list_movements;
use crate::components::empty_state::NoDataYet;
use crate::components::table::DataTable;
use crate::components::time::format_utc;
use crate::domain::money;

const KINDS: [(&str, &str); 6] = [
    ("", "All"),
    ("new", "New"),
    ("expansion", "Expansion"),
    ("contraction", "Contraction"),
    ("churn", "Churn"),
    ("reactivation", "Reactivation"),
];

#[component]
pub fn RevenuePage() -> impl IntoView {
    let query = use_query_map();
    let data = Resource::new(
        move || {
            query.with(|q| {
                (
                    q.get("currency"),
                    q.get("kind"),
                    q.get("month"),
                    q.get("since"),
                    q.get("through"),
                )
            })
        },
        |(c, k, m, since, through)| list_movements(c, k, m, since, through),
    );
    view! {
        <Title text="Revenue"/>
        <div class="page-header"><h1>"Revenue"</h1></div>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let list = data.await?;
                if list.currency.is_empty() {
                    let explanation = "MRR movements appear once subscriptions have arrived from Stripe.";
                    return Ok::<_, ServerFnError>(view! { <NoDataYet page="Revenue" heading="No revenue data yet" explanation/> }.into_any());
                }
                let c = list.currency.clone();
                let kind = query.with(|q| q.get("kind")).unwrap_or_default();
                let month = query.with(|q| q.get("month")).unwrap_or_default();
                // The overview's 30-day figures link here with their exact window.
                let since = query.with(|q| q.get("since")).unwrap_or_default();
                let through = query.with(|q| q.get("through")).unwrap_or_default();
                let window = if since.is_empty() && through.is_empty() {
                    String::new()
                } else {
                    format!("&since={since}&through={through}")
                };
                let window_note = (!window.is_empty()).then(|| {
                    let at = |t: &str| t.parse::<i64>().ok().map(format_utc).unwrap_or_else(|| "…".into());
                    view! {
                        <p class="muted" data-test="movement-window">
                            {format!("Between {} and {} (UTC). ", at(&since), at(&through))}
                            <a href=format!("/revenue?currency={c}&kind={kind}")>"Show every date"</a>
                        </p>
                    }
                });
                let tabs = KINDS.iter().map(|(k, label)| {
                    let href = format!("/revenue?currency={c}&kind={k}&month={month}{window}");
                    view! { <a href=href aria-current=(kind == *k).then_some("page")>{*label}</a> }
                }).collect_view();
                // Several kinds at once (the overview's revenue churn: churn and contraction).
                let combined = (kind.contains(',')).then(|| {
                    let names = kind.split(',').map(str::trim).collect::<Vec<_>>().join(" and ");
                    view! { <a href=format!("/revenue?currency={c}&kind={kind}&month={month}{window}") aria-current="page">{names}</a> }
                });
                let currencies = list.currencies.iter().map(|cur| {
                    view! { <a href=format!("/revenue?currency={cur}&kind={kind}&month={month}{window}") aria-current=(*cur == c).then_some("page")>{cur.to_uppercase()}</a> }
                }).collect_view();
                let total = money::format(list.total, &c);
                let count = list.count;
                let shown = list.movements.len();
                let rows = list.movements.into_iter().map(|r| {
                    let m = r.movement;
                    let delta = money::format(m.delta, &c);
                    let event = (m.event_id.starts_with("evt_")).then(|| m.event_id.clone());
                    view! {
                        <tr class=format!("movement {}", m.kind.as_str())>
                            <td class="nowrap">{format_utc(m.at)}</td>
                            <td><span class=format!("badge {}", m.kind.as_str())>{m.kind.as_str()}</span></td>
                            <td><a href=format!("/customers/{}", m.customer_id)>{r.customer_label}</a></td>
                            <td class="mono small">{m.subscription_id}</td>
                            <td class="num">{delta}</td>
                            <td class="mono small">{match event {
                                Some(e) => view! { <a href=format!("/webhooks/{e}")>{e.clone()}</a> }.into_any(),
                                // A discount's start or end moved MRR (no event marks it).
                                None if m.event_id == "discount" => view! { "discount started or ended" }.into_any(),
                                None => view! { {m.event_id} }.into_any(),
                            }}</td>
                        </tr>
                    }
                }).collect_view();
                Ok(view! {
                    <nav class="tabs" aria-label="Currency">{currencies}</nav>
                    <nav class="tabs" aria-label="Kind">{tabs}{combined}</nav>
                    {window_note}
                    <form method="get" class="filters">
                        <input type="hidden" name="currency" value=c.clone()/>
                        <input type="hidden" name="kind" value=kind.clone()/>
                        <label>"Month " <input type="month" name="month" value=month.clone()/></label>
                        <button type="submit" class="button">"Filter"</button>
                        <input type="hidden" name="since" value=since.clone()/>
                        <input type="hidden" name="through" value=through.clone()/>
                        <a href=format!("/export/movements.csv?currency={c}&kind={kind}&month={month}{window}") class="button secondary" download>"Download CSV"</a>
                    </form>
                    <section class="card">
                        <p class="muted">
                            <span data-test="movement-count" data-count=count>{money::count(count)}</span>
                            {if count == 1 { " movement, net change " } else { " movements, net change " }}
                            <strong data-test="movement-total" data-sum=list.total>{total}</strong>
                            {(i64::try_from(shown).unwrap_or(i64::MAX) < count).then(|| format!(" (the newest {shown} shown)"))}
                            " · "
                            <a href="/definitions#movements">"How movements are classified"</a>
                            " " {crate::components::time::stale_note(list.as_of)}</p>
                        <DataTable headers=&["When (UTC)", "Kind", "Customer", "Subscription", "MRR change", "Event"] numeric=&[4] class="movements">
                            {rows}
                        </DataTable>
                    </section>
                }.into_any())
            })}
        </Suspense>
    }
}
