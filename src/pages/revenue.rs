//! Revenue: every MRR movement with its subscription, customer and the event that caused it,
//! filtered by kind and month in the URL.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::revenue::list_movements;
use crate::components::chart::{Chart, Kind, Series};
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
                    q.get("after"),
                    q.get("account"),
                )
            })
        },
        |(c, k, m, since, through, after, account)| list_movements(c, k, m, since, through, after, account),
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
                // The chosen Stripe account travels with every link below.
                let acct = crate::components::query::account_suffix();
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
                    view! {
                        <p class="muted" data-test="movement-window">
                            {format!("Movements {}. ", crate::components::time::window_text(&since, &through))}
                            <a href=format!("/revenue?currency={c}{acct}&kind={kind}")>"Show every date"</a>
                        </p>
                    }
                });
                let tabs = KINDS.iter().map(|(k, label)| {
                    let href = format!("/revenue?currency={c}{acct}&kind={k}&month={month}{window}");
                    view! { <a href=href aria-current=(kind == *k).then_some("page")>{*label}</a> }
                }).collect_view();
                // Several kinds at once (the overview's revenue churn: churn and contraction).
                let combined = (kind.contains(',')).then(|| {
                    let names = kind.split(',').map(str::trim).collect::<Vec<_>>().join(" and ");
                    view! { <a href=format!("/revenue?currency={c}{acct}&kind={kind}&month={month}{window}") aria-current="page">{names}</a> }
                });
                let currencies = list.currencies.iter().map(|cur| {
                    view! { <a href=format!("/revenue?currency={cur}{acct}&kind={kind}&month={month}{window}") aria-current=(*cur == c).then_some("page")>{cur.to_uppercase()}</a> }
                }).collect_view();
                let total = money::format(list.total, &c);
                let count = list.count;
                let shown = list.movements.len();
                let shown_total = money::format(list.shown_total, &c);
                let paged = query.with(|q| q.get("after")).is_some_and(|a| !a.is_empty());
                let here = format!("/revenue?currency={c}{acct}&kind={kind}&month={month}{window}");
                let next = list.next.clone().map(|after| view! {
                    <a class="button secondary" href=format!("{here}&after={}", crate::components::query::encode(&after))>"Older movements"</a>
                });
                let first = paged.then(|| view! { <a class="button secondary" href=here.clone()>"Newest movements"</a> });
                // The roll-up: the matching movements per month, each bar opening its month.
                let labels: Vec<String> = list.months.iter().map(|p| p.month.clone()).collect();
                let pick = |f: fn(&crate::domain::revenue::MonthPoint) -> i64| list.months.iter().map(f).collect::<Vec<_>>();
                let bar_links = |k: &str| labels.iter().map(|l| format!("/revenue?currency={c}{acct}&kind={k}&month={l}{window}")).collect::<Vec<_>>();
                let wanted = |k: &str| kind.is_empty() || kind.split(',').any(|x| x.trim() == k);
                let series: Vec<Series> = [
                    ("New", "s-new", "new", pick(|p| p.new)),
                    ("Expansion", "s-expansion", "expansion", pick(|p| p.expansion)),
                    ("Reactivation", "s-reactivation", "reactivation", pick(|p| p.reactivation)),
                    ("Contraction", "s-contraction", "contraction", pick(|p| p.contraction)),
                    ("Churn", "s-churn", "churn", pick(|p| p.churn)),
                ]
                .into_iter()
                .filter(|(_, _, k, _)| wanted(k))
                .map(|(name, class, k, values)| Series { name, class, values, links: bar_links(k) })
                .collect();
                let whole = 10i64.pow(money::decimals(&c));
                let months_options = labels.iter().rev().map(|l| {
                    view! { <option value=l.clone() selected=*l == month>{l.clone()}</option> }
                }).collect_view();
                let rows = list.movements.into_iter().map(|r| {
                    let m = r.movement;
                    let delta = money::format(m.delta, &c);
                    let event = (m.event_id.starts_with("evt_")).then(|| m.event_id.clone());
                    view! {
                        <tr class=format!("movement {}", m.kind.as_str())>
                            <td class="nowrap" data-label="When">{format_utc(m.at)}</td>
                            <td data-label="Kind"><span class=format!("badge {}", m.kind.as_str())>{crate::domain::status::label(m.kind.as_str())}</span></td>
                            <td data-label="Customer"><a href=format!("/customers/{}", m.customer_id)>{r.customer_label}</a></td>
                            <td class="mono small" data-label="Subscription"><a href=format!("/customers/{}#{}", m.customer_id, m.subscription_id)>{m.subscription_id.clone()}</a></td>
                            <td class="num" data-label="MRR change">{delta}</td>
                            <td class="mono small" data-label="Event">{match event {
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
                        <crate::components::query::AccountField/>
                        <input type="hidden" name="currency" value=c.clone()/>
                        <input type="hidden" name="kind" value=kind.clone()/>
                        <label>"Month " <select name="month">
                            <option value="" selected=month.is_empty()>"Every month"</option>
                            {months_options}
                        </select></label>
                        <button type="submit" class="button">"Filter"</button>
                        <input type="hidden" name="since" value=since.clone()/>
                        <input type="hidden" name="through" value=through.clone()/>
                        <a href=format!("/export/movements.csv?currency={c}{acct}&kind={kind}&month={month}{window}") class="button secondary" download>"Download CSV"</a>
                    </form>
                    <section class="card">
                        <h2>"Per month"</h2>
                        <Chart title="Movements per month" months=labels.clone() kind=Kind::Stacked format=money::format axis_format=money::format_whole whole unit=c.clone() series/>
                    </section>
                    <section class="card">
                        <p class="muted">
                            "All matching: "
                            <span data-test="movement-count" data-count=count>{money::count(count)}</span>
                            {if count == 1 { " movement, net change " } else { " movements, net change " }}
                            <strong data-test="movement-total" data-sum=list.total>{total}</strong>
                            " · "
                            <a href="/definitions#movements">"How movements are classified"</a>
                            " " {crate::components::time::stale_note(list.as_of)}</p>
                        <p class="muted" data-test="movement-page">
                            {format!("This page: {} movement{}, net change ", money::count(shown as i64), if shown == 1 { "" } else { "s" })}
                            <strong data-sum=list.shown_total>{shown_total}</strong>
                        </p>
                        <DataTable headers=&["When (UTC)", "Kind", "Customer", "Subscription", "MRR change", "Event"] numeric=&[4] class="movements cards">
                            {rows}
                        </DataTable>
                        <div class="inline-form">{first}{next}</div>
                    </section>
                }.into_any())
            })}
        </Suspense>
    }
}
