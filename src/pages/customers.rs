//! Customers: search and browse, and one customer's billing history with its event timeline.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::customers::get_customer;
use crate::api::customers::{ChangeSubscription, OpenCustomerPortal};
use crate::components::list_view::ListView;
use crate::components::notice::action_message;
use crate::components::table::TableCard;
use crate::components::time::format_utc;
use crate::domain::customers::{CustomerDetail, MoneyRow};
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
        <TableCard title headers numeric=&[3] class="cards" empty>
            {rows
                .into_iter()
                .map(|r| {
                    let amt = amount(&r);
                    let status = r.status.clone().unwrap_or_default();
                    view! {
                        <tr id=r.id.clone()>
                            <td class="mono small" data-label=headers[0]>
                                {match link {
                                    Some(prefix) => view! { <a href=format!("{prefix}{}", r.id)>{r.id.clone()}</a> }.into_any(),
                                    None => view! { {r.id.clone()} }.into_any(),
                                }}
                            </td>
                            <td class="nowrap" data-label=headers[1]>{r.created.map(format_utc).unwrap_or_default()}</td>
                            <td data-label=headers[2]>{(!status.is_empty()).then(|| view! {
                                <span class=format!("status tone-{}", crate::domain::status::tone(&status))>{crate::domain::status::label(&status)}</span>
                            })}</td>
                            <td class="num" data-label=headers[3]>{amt}</td>
                            <td class="muted small" data-label=headers[4]>{r.note.map(|n| crate::domain::status::label(&n)).unwrap_or_default()}</td>
                        </tr>
                    }
                })
                .collect_view()}
        </TableCard>
    }
}

/// Why Stripe actions are unavailable.
const NO_KEY: &str =
    "Stripe actions need STRIPE_SECRET_KEY (the Stripe dashboard → Developers → API keys); set it and restart Tally.";

/// "Cancel … now?": what will happen, and the button that does it.
#[component]
fn ConfirmCancel(
    action: String,
    sub: crate::domain::customers::SubscriptionRow,
    customer: String,
    customer_id: String,
    token: String,
    change: ServerAction<ChangeSubscription>,
    ready: bool,
) -> AnyView {
    let now = action == "cancel_now";
    if !now && action != "cancel_at_period_end" {
        return view! { <p class="form-error" role="alert">"Unknown action."</p> }.into_any();
    }
    let plan = if sub.plan.is_empty() {
        sub.id.clone()
    } else {
        sub.plan.clone()
    };
    let mrr = match (sub.mrr, sub.currency.as_deref()) {
        (Some(v), Some(c)) if v > 0 => Some(money::format(v, c)),
        _ => None,
    };
    let ends = sub.current_period_end.map(format_utc);
    let what = if now {
        format!(
            "The subscription ends immediately{}. {}Stripe makes no refund: refund the last payment separately if one is owed.",
            ends.as_ref().map(|e| format!(", before its paid period ends on {e}")).unwrap_or_default(),
            mrr.as_ref().map(|m| format!("MRR falls by {m} today. ")).unwrap_or_default(),
        )
    } else {
        format!(
            "It stays active until the end of its period{}, then ends. {}You can resume it until then.",
            ends.as_ref().map(|e| format!(" ({e})")).unwrap_or_default(),
            mrr.as_ref()
                .map(|m| format!("MRR falls by {m} then. "))
                .unwrap_or_default(),
        )
    };
    let question = if now {
        format!("Cancel {plan} for {customer} now?")
    } else {
        format!("Cancel {plan} for {customer} at the end of its period?")
    };
    let button = if now {
        "Yes, cancel now"
    } else {
        "Yes, cancel at period end"
    };
    view! {
        <section class="card confirm" id="confirm" role="alertdialog" aria-labelledby="confirm-title" data-test="confirm-cancel">
            <h2 id="confirm-title">{question}</h2>
            <p>{what}</p>
            <p class="muted small mono">{sub.id.clone()}</p>
            <div class="inline-form">
                <ActionForm action=change attr:class="inline-form">
                    <input type="hidden" name="subscription_id" value=sub.id.clone()/>
                    <input type="hidden" name="action" value=action.clone()/>
                    <input type="hidden" name="token" value=token/>
                    <button type="submit" class="button danger" disabled=!ready title=(!ready).then_some(NO_KEY)>{button}</button>
                </ActionForm>
                <a class="button secondary" href=format!("/customers/{customer_id}")>"Keep the subscription"</a>
            </div>
        </section>
    }
    .into_any()
}

#[component]
fn CustomerView(detail: CustomerDetail) -> impl IntoView {
    let c = detail.customer;
    let heading = c.name.clone().or(c.email.clone()).unwrap_or_else(|| c.id.clone());
    let portal = ServerAction::<OpenCustomerPortal>::new();
    let change = ServerAction::<ChangeSubscription>::new();
    let token = detail.form_token.clone();
    let portal_customer = c.id.clone();
    let ready = detail.stripe_ready;
    let customer_id = c.id.clone();
    let query = use_query_map();
    // The confirmation a cancel link asked for (not once the change was submitted).
    let confirm = query.with_untracked(|q| q.get("confirm").zip(q.get("subscription")));
    let confirm = confirm
        .filter(|_| crate::components::notice::action_outcome(change).is_none())
        .and_then(|(action, sub)| {
            let s = detail.subscriptions.iter().find(|s| s.id == sub)?;
            Some(view! { <ConfirmCancel action sub=s.clone() customer=heading.clone() customer_id=c.id.clone() token=token.clone() change ready/> })
        });
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
                <button type="submit" class="button" disabled=!ready title=(!ready).then_some(NO_KEY)>"Open billing portal"</button>
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
        {confirm}
        {(!ready).then(|| view! {
            <p class="muted small" data-test="stripe-unavailable">{NO_KEY}</p>
        })}
        <TableCard
            title="Subscriptions"
            headers=&["Plan", "Status", "MRR", "Current period ends", "Subscription", ""]
            numeric=&[2]
            class="cards"
            empty=detail.subscriptions.is_empty()
        >
            {detail
                .subscriptions
                .into_iter()
                .map(|s| {
                    let live = matches!(s.status.as_deref(), Some("active" | "trialing" | "past_due" | "unpaid" | "incomplete"));
                    let sub_id = s.id.clone();
                    let customer_id = customer_id.clone();
                    // Cancelling asks first (a page of its own, so it works without JavaScript);
                    // resuming undoes nothing and runs at once.
                    let ask = move |action: &str, label: &'static str| {
                        let href = format!("/customers/{customer_id}?confirm={action}&subscription={sub_id}#confirm");
                        if ready {
                            view! { <a class="button small danger-outline" href=href>{label}</a> }.into_any()
                        } else {
                            view! { <button type="button" class="button small" disabled title=NO_KEY>{label}</button> }.into_any()
                        }
                    };
                    let resume = (live && s.cancel_at_period_end).then(|| {
                        let (sub_id, token) = (s.id.clone(), token.clone());
                        view! {
                            <ActionForm action=change attr:class="inline-form">
                                <input type="hidden" name="subscription_id" value=sub_id/>
                                <input type="hidden" name="action" value="resume"/>
                                <input type="hidden" name="token" value=token/>
                                <button type="submit" class="button small" disabled=!ready title=(!ready).then_some(NO_KEY)>"Resume"</button>
                            </ActionForm>
                        }
                    });
                    let cancel_end = (live && !s.cancel_at_period_end).then(|| ask("cancel_at_period_end", "Cancel at period end…"));
                    let cancel_now = live.then(|| ask("cancel_now", "Cancel now…"));
                    let row_id = s.id.clone();
                    let mrr = match (s.mrr, s.currency.as_deref()) {
                        (Some(v), Some(c)) => money::format(v, c),
                        _ => String::new(),
                    };
                    let status = s.status.clone().unwrap_or_default();
                    view! {
                        <tr data-subscription=row_id.clone() id=row_id>
                            <td data-label="Plan">
                                {if s.plan.is_empty() { "—".to_string() } else { s.plan.clone() }}
                                {(s.quantity > 1).then(|| view! { <span class="muted">{format!(" × {}", money::count(s.quantity))}</span> })}
                                {s.items_incomplete.then(|| view! {
                                    <div class="warning small" data-test="items-incomplete">
                                        "Stripe sent only some of its items: MRR counts only these until the rest is fetched (needs STRIPE_SECRET_KEY, or run tally sync)."
                                    </div>
                                })}
                            </td>
                            <td class="subscription-status" data-label="Status">
                                {(!status.is_empty()).then(|| view! {
                                    <span class=format!("status tone-{}", crate::domain::status::tone(&status))>{crate::domain::status::label(&status)}</span>
                                })}
                                {s.cancel_at_period_end.then(|| view! { <span class="muted small">" (cancels at period end)"</span> })}
                            </td>
                            <td class="num" data-label="MRR">{mrr}</td>
                            <td class="nowrap" data-label="Period ends">{s.current_period_end.map(format_utc).unwrap_or_default()}</td>
                            <td class="mono small" data-label="Subscription">{s.id}</td>
                            <td class="nowrap actions">{resume}{cancel_end}{cancel_now}</td>
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
                                    <span class=format!("status status-{}", e.status)>{e.status.as_str()}</span>
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
