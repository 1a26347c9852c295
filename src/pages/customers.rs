//! Customers: search and browse, and one customer's billing history with its event timeline.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::billing::{ChangeSubscription, OpenCustomerPortal};
use crate::api::customers::{get_customer, CustomerDetail, MoneyRow};
use crate::components::list_view::ListView;
use crate::components::notice::action_message;
use crate::components::table::TableCard;
use crate::components::time::format_utc;
use crate::domain::money;

/// Customers: search by email, name or id; paying or not; sorted by date or MRR; CSV.
#[component]
pub fn CustomersPage() -> impl IntoView {
    view! {
        <Title text="Customers"/>
        <div class="page-header">
            <h1>"Customers"</h1>
        </div>
        <ListView
            list="customers"
            tabs=&[("all", "All"), ("paying", "Paying"), ("not_paying", "Not paying"), ("deleted", "Deleted")]
            empty_text="No customer matches these filters."
        />
    }
}

#[component]
pub fn CustomerPage() -> impl IntoView {
    let params = use_params_map();
    let customer = Resource::new(move || params.with(|p| p.get("id")).unwrap_or_default(), get_customer);
    view! {
        <Title text="Customer"/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                customer
                    .await
                    .map(|found| match found {
                        None => view! {
                            <div class="page-header"><h1>"Customer"</h1></div>
                            <section class="card"><p>"No customer with this id is known to Tally yet."</p></section>
                        }
                            .into_any(),
                        Some(detail) => view! { <CustomerView detail/> }.into_any(),
                    })
            })}
        </Suspense>
    }
}

fn amount(row: &MoneyRow) -> String {
    match (row.amount, row.currency.as_deref()) {
        (Some(a), Some(c)) => money::format(a, c),
        _ => String::new(),
    }
}

/// `link`: a path prefix that makes each id a link to its page.
fn money_table(
    title: &'static str,
    rows: Vec<MoneyRow>,
    headers: &'static [&'static str],
    link: Option<&'static str>,
) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <TableCard title headers numeric=&[3] empty>
            {rows
                .into_iter()
                .map(|r| {
                    let amt = amount(&r);
                    let status = r.status.clone().unwrap_or_default();
                    view! {
                        <tr id=r.id.clone()>
                            <td class="mono small">
                                {match link {
                                    Some(prefix) => view! { <a href=format!("{prefix}{}", r.id)>{r.id.clone()}</a> }.into_any(),
                                    None => view! { {r.id.clone()} }.into_any(),
                                }}
                            </td>
                            <td class="nowrap">{r.created.map(format_utc).unwrap_or_default()}</td>
                            <td>{(!status.is_empty()).then(|| view! {
                                <span class=format!("status tone-{}", crate::domain::status::tone(&status))>{crate::domain::status::label(&status)}</span>
                            })}</td>
                            <td class="num">{amt}</td>
                            <td class="muted small">{r.note.map(|n| crate::domain::status::label(&n)).unwrap_or_default()}</td>
                        </tr>
                    }
                })
                .collect_view()}
        </TableCard>
    }
}

#[component]
fn CustomerView(detail: CustomerDetail) -> impl IntoView {
    let c = detail.customer;
    let heading = c.name.clone().or(c.email.clone()).unwrap_or_else(|| c.id.clone());
    let portal = ServerAction::<OpenCustomerPortal>::new();
    let change = ServerAction::<ChangeSubscription>::new();
    let token = detail.form_token.clone();
    let portal_customer = c.id.clone();
    view! {
        <div class="page-header">
            <h1>{heading}</h1>
            <a href="/customers">"← All customers"</a>
        </div>
        {action_message(portal)}
        {action_message(change)}
        {(!c.deleted).then(|| view! {
            <ActionForm action=portal attr:class="inline-form page-actions">
                <input type="hidden" name="customer_id" value=portal_customer/>
                <button type="submit" class="button">"Open billing portal"</button>
            </ActionForm>
        })}
        <section class="card">
            <dl class="config-list">
                <dt>"Id"</dt><dd class="mono">{c.id.clone()}</dd>
                <dt>"Email"</dt><dd>{c.email.clone().unwrap_or_else(|| "—".into())}</dd>
                <dt>"Customer since"</dt><dd>{c.created.map(format_utc).unwrap_or_default()}</dd>
                <dt>"Status"</dt><dd>{if c.deleted { "deleted in Stripe" } else { "active" }}</dd>
            </dl>
        </section>
        <TableCard
            title="Subscriptions"
            headers=&["Id", "Status", "Items", "Current period ends", ""]
            empty=detail.subscriptions.is_empty()
        >
            {detail
                .subscriptions
                .into_iter()
                .map(|s| {
                    let live = matches!(s.status.as_deref(), Some("active" | "trialing" | "past_due" | "unpaid" | "incomplete"));
                    let actions: Vec<(&'static str, &'static str)> = match (live, s.cancel_at_period_end) {
                        (false, _) => vec![],
                        (true, true) => vec![("resume", "Resume"), ("cancel_now", "Cancel now")],
                        (true, false) => vec![("cancel_at_period_end", "Cancel at period end"), ("cancel_now", "Cancel now")],
                    };
                    let sub_id = s.id.clone();
                    let row_id = s.id.clone();
                    let token = token.clone();
                    let buttons = actions.into_iter().map(|(action, label)| {
                        let (sub_id, token) = (sub_id.clone(), token.clone());
                        let class = if action == "cancel_now" { "button danger small" } else { "button small" };
                        view! {
                            <ActionForm action=change attr:class="inline-form">
                                <input type="hidden" name="subscription_id" value=sub_id/>
                                <input type="hidden" name="action" value=action/>
                                <input type="hidden" name="token" value=token/>
                                <button type="submit" class=class>{label}</button>
                            </ActionForm>
                        }
                    }).collect_view();
                    view! {
                        <tr data-subscription=row_id.clone() id=row_id>
                            <td class="mono small">{s.id}</td>
                            <td class="subscription-status">
                                {s.status.map(|st| view! {
                                    <span class=format!("status tone-{}", crate::domain::status::tone(&st))>{crate::domain::status::label(&st)}</span>
                                })}
                                {s.cancel_at_period_end.then(|| view! { <span class="muted small">" (cancels at period end)"</span> })}
                            </td>
                            <td>
                                {s.items}
                                {s.items_incomplete.then(|| view! {
                                    <div class="warning small" data-test="items-incomplete">
                                        "Stripe sent only some of its items: MRR counts only these until the rest is fetched (needs STRIPE_SECRET_KEY, or run tally sync)."
                                    </div>
                                })}
                            </td>
                            <td class="nowrap">{s.current_period_end.map(format_utc).unwrap_or_default()}</td>
                            <td class="nowrap">{buttons}</td>
                        </tr>
                    }
                })
                .collect_view()}
        </TableCard>
        {money_table("Invoices", detail.invoices, &["Id", "Date (UTC)", "Status", "Amount", "Reason"], None)}
        {money_table("Payments", detail.charges, &["Id", "Date (UTC)", "Status", "Amount", "Failure"], Some("/payments/"))}
        {money_table("Refunds", detail.refunds, &["Id", "Date (UTC)", "Status", "Amount", "Reason"], None)}
        {money_table("Disputes", detail.disputes, &["Id", "Date (UTC)", "Status", "Amount", "Reason"], None)}
        <TableCard
            title="Payment methods"
            headers=&["Id", "Type", "Card", "Expires"]
            empty=detail.payment_methods.is_empty()
        >
            {detail
                .payment_methods
                .into_iter()
                .map(|pm| {
                    let card = match (pm.card_brand, pm.card_last4) {
                        (Some(brand), Some(last4)) => format!("{brand} •••• {last4}"),
                        _ => String::new(),
                    };
                    let expires = match (pm.exp_month, pm.exp_year) {
                        (Some(m), Some(y)) => format!("{m:02}/{y}"),
                        _ => String::new(),
                    };
                    view! {
                        <tr>
                            <td class="mono small">{pm.id}</td>
                            <td>{pm.kind.unwrap_or_default()}</td>
                            <td>{card}</td>
                            <td>{expires}</td>
                        </tr>
                    }
                })
                .collect_view()}
        </TableCard>
        <section class="card">
            <h2>"Timeline"</h2>
            {if detail.events.is_empty() {
                view! { <p class="muted">"No events yet."</p> }.into_any()
            } else {
                view! {
                    <ol class="timeline">
                        {detail
                            .events
                            .into_iter()
                            .map(|e| view! {
                                <li>
                                    <span class="nowrap muted small">{format_utc(e.created)}</span>
                                    " "
                                    <a href=format!("/webhooks/{}", e.id)><code>{e.event_type}</code></a>
                                    " "
                                    <span class=format!("status status-{}", e.status)>{e.status.clone()}</span>
                                </li>
                            })
                            .collect_view()}
                    </ol>
                }
                    .into_any()
            }}
        </section>
    }
}
