//! A list page: status tabs, a filter form (search, currency, dates, sort), the table, totals of
//! the whole filtered list, keyset paging and a CSV download of the same filters. Everything lives
//! in the URL, so a link shows the same list.

use leptos::prelude::*;
use leptos_router::hooks::{use_location, use_query_map};

use super::query::{carry, encode};
use crate::api::lists::list_page;

const KEYS: [&str; 10] = [
    "status", "q", "currency", "from", "until", "sort", "dir", "on", "since", "through",
];

#[component]
pub fn ListView(
    /// The list's name (`subscriptions`, `payments`, …).
    list: &'static str,
    /// (status value, label); the first is the default tab.
    tabs: &'static [(&'static str, &'static str)],
    #[prop(optional)] search_label: &'static str,
    /// Shown when nothing matches.
    #[prop(default = "Nothing matches these filters.")]
    empty_text: &'static str,
) -> impl IntoView {
    let query = use_query_map();
    let location = use_location();
    let default_status = tabs.first().map(|(v, _)| *v).unwrap_or("all");
    let data = Resource::new(
        move || {
            let mut q = location.search.get();
            if !query.with(|p| p.get("status").is_some()) {
                q = format!("{}&status={default_status}", q.trim_start_matches('?'));
            }
            q
        },
        move |q| list_page(list.to_string(), q),
    );
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let result = data.await?;
                let params = query.get_untracked();
                let status = params.get("status").unwrap_or_else(|| default_status.to_string());
                let tab_links = tabs.iter().map(|(value, label)| {
                    let href = format!("/{list}?{}", carry(&params, &KEYS, ("status", value)));
                    view! { <a href=href aria-current=(status == *value).then_some("page")>{*label}</a> }
                }).collect_view();
                let field = |k: &str| params.get(k).unwrap_or_default();
                let sorts = result.sorts.iter().map(|s| {
                    let selected = field("sort") == *s;
                    view! { <option value=s.clone() selected=selected>{s.replace('_', " ")}</option> }
                }).collect_view();
                let csv_query = KEYS.iter().filter_map(|k| {
                    let v = if *k == "status" { Some(status.clone()) } else { params.get(k) };
                    v.filter(|v| !v.is_empty()).map(|v| format!("{k}={}", encode(&v)))
                }).collect::<Vec<_>>().join("&");
                let totals = result.totals.iter().map(|t| {
                    let amount = t.amount.clone().map(|a| {
                        let measure = t.measure.clone().map(|m| format!(" {m}")).unwrap_or_default();
                        format!(" · {a}{measure}")
                    }).unwrap_or_default();
                    view! {
                        <span class="total" data-currency=t.currency.clone() data-count=t.count data-sum=t.sum>
                            {format!("{} {}{amount}", crate::domain::money::count(t.count), t.currency.to_uppercase())}
                        </span>
                    }
                }).collect_view();
                // A window the overview's 30-day figures link with (Unix seconds).
                let window = (!field("since").is_empty() || !field("through").is_empty()).then(|| {
                    let on = if field("on") == "trial_end" { "Trial ended" } else { "Created" };
                    let clear: Vec<&str> = KEYS.iter().copied().filter(|k| !matches!(*k, "on" | "since" | "through")).collect();
                    view! {
                        <p class="muted" data-test="list-window">
                            {format!("{on} {}. ", crate::components::time::window_text(&field("since"), &field("through")))}
                            <a href=format!("/{list}?{}", carry(&params, &clear, ("status", &status)))>"Show every date"</a>
                        </p>
                    }
                });
                let empty = result.rows.is_empty();
                let headers = result.headers.iter().enumerate().map(|(i, h)| {
                    let numeric = result.rows.first().is_some_and(|r| r.get(i).is_some_and(|c| c.numeric));
                    view! { <th class:num=numeric>{h.clone()}</th> }
                }).collect_view();
                let names = result.headers.clone();
                let rows = result.rows.into_iter().map(|row| {
                    // Each cell names its column: on a phone the rows become cards that show it.
                    let cells = row.into_iter().enumerate().map(|(i, c)| {
                        let class = if c.numeric { "num" } else { "" };
                        let label = names.get(i).cloned().unwrap_or_default();
                        match (c.href, c.badge) {
                            (Some(href), _) => view! { <td class=class data-label=label><a href=href>{c.text}</a></td> }.into_any(),
                            (None, Some(tone)) => view! { <td class=class data-label=label><span class=format!("status tone-{tone}")>{c.text}</span></td> }.into_any(),
                            (None, None) if c.time => {
                                let (day, clock) = c.text.split_once(' ').map(|(d, t)| (d.to_string(), t.to_string())).unwrap_or((c.text.clone(), String::new()));
                                view! { <td class="time" data-label=label><span class="nowrap">{day}</span> " " <span class="nowrap">{clock}</span></td> }.into_any()
                            }
                            (None, None) => view! { <td class=class data-label=label>{c.text}</td> }.into_any(),
                        }
                    }).collect_view();
                    view! { <tr>{cells}</tr> }
                }).collect_view();
                let next = result.next.map(|after| {
                    let href = format!("/{list}?{}", carry(&params, &KEYS, ("after", &after)));
                    view! { <a class="button secondary" href=href>"Next page"</a> }
                });
                Ok::<_, ServerFnError>(view! {
                    <nav class="tabs" aria-label="Status">
                        {tab_links}
                        {(!tabs.iter().any(|(v, _)| *v == "all")).then(|| view! {
                            <a href=format!("/{list}?{}", carry(&params, &KEYS, ("status", "all"))) aria-current=(status == "all").then_some("page")>"All"</a>
                        })}
                    </nav>
                    {window}
                    <form method="get" class="filters" action=format!("/{list}")>
                        <crate::components::query::AccountField/>
                        <input type="hidden" name="status" value=status.clone()/>
                        {["on", "since", "through"].into_iter().filter(|k| !field(k).is_empty()).map(|k| {
                            view! { <input type="hidden" name=k value=field(k)/> }
                        }).collect_view()}
                        <label>{if search_label.is_empty() { "Search" } else { search_label }} " " <input type="search" name="q" value=field("q") placeholder="email, name or id"/></label>
                        <label>"Currency " <input type="text" name="currency" value=field("currency") size="4" maxlength="3" placeholder="usd"/></label>
                        <label>"From " <input type="date" name="from" value=field("from")/></label>
                        <label>"Until " <input type="date" name="until" value=field("until")/></label>
                        <label>"Sort " <select name="sort">{sorts}</select></label>
                        <label>"Order " <select name="dir">
                            <option value="desc" selected=field("dir") != "asc">"newest / largest first"</option>
                            <option value="asc" selected=field("dir") == "asc">"oldest / smallest first"</option>
                        </select></label>
                        <button type="submit" class="button">"Apply"</button>
                        <a class="button secondary" href=format!("/export/{list}.csv?{csv_query}") download data-test="csv">"Download CSV"</a>
                    </form>
                    <section class="card">
                        <p class="totals muted">
                            {if result.totals.is_empty() { "Nothing matches." } else { "Matching: " }}
                            {totals} " " {crate::components::time::stale_note(result.totals_as_of)}
                        </p>
                        {if empty {
                            view! { <p class="muted">{empty_text}</p> }.into_any()
                        } else {
                            view! {
                                <div class="table-wrap">
                                    <table class=format!("table cards list-{list}")>
                                        <thead><tr>{headers}</tr></thead>
                                        <tbody>{rows}</tbody>
                                    </table>
                                </div>
                            }.into_any()
                        }}
                        {next}
                    </section>
                }.into_any())
            })}
        </Suspense>
    }
}
