//! `/payments/{id}`: one payment, its refunds, and the refund form (admins and owners).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::payment::{payment_detail, RefundPayment};

use crate::components::notice::action_message;
use crate::components::table::TableCard;
use crate::components::time::format_utc;
use crate::domain::money;
use crate::domain::payments::PaymentView;

#[component]
pub fn PaymentPage() -> impl IntoView {
    let params = use_params_map();
    let refund = ServerAction::<RefundPayment>::new();
    let payment = Resource::new(
        move || (params.with(|p| p.get("id")).unwrap_or_default(), refund.version().get()),
        |(id, _)| payment_detail(id),
    );
    view! {
        <Title text="Payment"/>
        <div class="page-header">
            <h1>"Payment"</h1>
            <a href="/payments">"← Payments"</a>
        </div>
        {action_message(refund)}
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                payment.await.map(|found| match found {
                    None => view! { <section class="card"><p>"No payment with this id is known to Tally."</p></section> }.into_any(),
                    Some(p) => view! { <PaymentCard p refund/> }.into_any(),
                })
            })}
        </Suspense>
    }
}

#[component]
fn PaymentCard(p: PaymentView, refund: ServerAction<RefundPayment>) -> impl IntoView {
    let cur = p.currency.clone();
    let fmt = move |a: i64| money::format(a, &cur);
    let customer = p.customer_id.clone().map(|id| {
        let label = p.customer_email.clone().unwrap_or_else(|| id.clone());
        view! { <a href=format!("/customers/{id}")>{label}</a> }
    });
    let can_refund = p.remaining > 0;
    let checking = (p.checking > 0).then(|| fmt(p.checking));
    let refunds_empty = p.refunds.is_empty();
    view! {
        <section class="card">
            <dl class="config-list">
                <dt>"Id"</dt><dd class="mono">{p.id.clone()}</dd>
                <dt>"Date"</dt><dd>{p.created.map(format_utc).unwrap_or_default()}</dd>
                <dt>"Status"</dt><dd data-field="status">{p.status.clone().map(|st| crate::domain::status::label(&st)).unwrap_or_default()}</dd>
                <dt>"Amount"</dt><dd data-field="amount">{fmt(p.amount)}</dd>
                <dt>"Refunded"</dt><dd data-field="refunded">{fmt(p.refunded)}</dd>
                {checking.map(|amount| view! {
                    <dt>"Refund outcome being checked"</dt>
                    <dd data-field="checking">{format!("{amount}: Stripe did not confirm it; Tally is checking (it is never sent twice)")}</dd>
                })}
                <dt>"Customer"</dt><dd>{customer}</dd>
                <dt>"Card"</dt><dd>{p.card.clone().unwrap_or_else(|| "—".into())}</dd>
                {p.failure.clone().map(|f| view! { <dt>"Failure"</dt><dd>{f}</dd> })}
            </dl>
        </section>
        {can_refund.then(|| view! { <RefundSteps p=p.clone() refund/> })}
        <TableCard title="Refunds" headers=&["Id", "Date (UTC)", "Status", "Amount", "Reason", "By"] numeric=&[3] class="cards" empty=refunds_empty>
            {p.refunds.into_iter().map(|r| {
                let amount = money::format(r.amount, &p.currency);
                let id = r.id.clone();
                view! {
                    <tr data-refund=id>
                        <td class="mono small" data-label="Id">{r.id}</td>
                        <td class="nowrap" data-label="Date">{r.created.map(format_utc).unwrap_or_default()}</td>
                        <td class="refund-status" data-label="Status">{r.status.map(|st| view! {
                            <span class=format!("status tone-{}", crate::domain::status::tone(&st))>{crate::domain::status::label(&st)}</span>
                        })}</td>
                        <td class="num" data-label="Amount">{amount}</td>
                        <td data-label="Reason">{r.reason.map(|r| crate::domain::status::label(&r)).unwrap_or_default()}</td>
                        <td class="small" data-label="By">{r.requested_by.unwrap_or_default()} {r.note.map(|n| view! { <div class="muted">{n}</div> })}</td>
                    </tr>
                }
            }).collect_view()}
        </TableCard>
    }
}

const REASONS: [(&str, &str); 3] = [
    ("requested_by_customer", "Requested by the customer"),
    ("duplicate", "Duplicate"),
    ("fraudulent", "Fraudulent"),
];

/// Why Stripe actions are unavailable.
const NO_KEY: &str =
    "Refunds need STRIPE_SECRET_KEY (the Stripe dashboard → Developers → API keys); set it and restart Tally.";

/// A refund in two steps, both plain forms (they work without JavaScript): the amount and
/// reason, then a confirmation that says what will happen, where the refund is sent. The
/// idempotency key of the first step's page goes with it, so confirming twice (a reload, a
/// second tab) sends one refund.
#[component]
fn RefundSteps(p: PaymentView, refund: ServerAction<RefundPayment>) -> AnyView {
    let query = use_query_map();
    let field = |k: &str| query.with_untracked(|q| q.get(k)).unwrap_or_default();
    let cur = p.currency.clone();
    let remaining = money::format(p.remaining, &cur);
    let submitted = crate::components::notice::action_outcome(refund).is_some();
    let reviewing = field("review") == "refund" && !submitted;
    // The amount asked for, checked before anything is sent.
    let checked: Result<i64, String> = {
        let typed = field("amount");
        if typed.trim().is_empty() {
            Ok(p.remaining)
        } else {
            money::parse_input(&typed, &cur).and_then(|a| {
                if a <= 0 {
                    Err("The amount must be more than zero.".to_string())
                } else if a > p.remaining {
                    Err(format!("At most {remaining} remains to refund."))
                } else {
                    Ok(a)
                }
            })
        }
    };
    let reason = field("reason");
    let reason = REASONS
        .iter()
        .find(|(v, _)| *v == reason)
        .copied()
        .unwrap_or(REASONS[0]);
    let key = Some(field("key"))
        .filter(|k| k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| p.form_key.clone());
    if !p.stripe_ready {
        return view! {
            <section class="card">
                <h2>"Refund"</h2>
                <p class="muted" data-test="stripe-unavailable">{NO_KEY}</p>
                <button type="button" class="button" disabled title=NO_KEY>"Refund this payment…"</button>
            </section>
        }
        .into_any();
    }
    match (reviewing, checked) {
        (true, Ok(amount)) => {
            let shown = money::format(amount, &cur);
            let to = match (&p.customer_email, &p.customer_id) {
                (Some(e), _) => format!(" to {e}"),
                (None, Some(id)) => format!(" to {id}"),
                _ => String::new(),
            };
            let card = p.card.clone().map(|c| format!(" on {c}")).unwrap_or_default();
            let whole = if amount == p.remaining && p.refunded == 0 {
                "the whole payment".to_string()
            } else {
                format!("{shown} of {}", money::format(p.amount, &cur))
            };
            view! {
                <section class="card confirm" id="confirm" role="alertdialog" aria-labelledby="refund-title" data-test="confirm-refund">
                    <h2 id="refund-title">{format!("Refund {whole}{to}?")}</h2>
                    <p>{format!(
                        "Stripe sends {shown} back{card} now; banks take 5–10 business days to show it. A refund cannot be undone. Reason: {}.",
                        reason.1.to_lowercase()
                    )}</p>
                    <ActionForm action=refund attr:class="stack-form" attr:id="refund-form">
                        <input type="hidden" name="charge_id" value=p.id.clone()/>
                        <input type="hidden" name="idempotency_key" value=key/>
                        <input type="hidden" name="amount" value=money::to_input(amount, &cur)/>
                        <input type="hidden" name="reason" value=reason.0/>
                        <label>"Internal note " <textarea name="note" maxlength="500" rows="2"></textarea></label>
                        <div class="inline-form">
                            <button type="submit" class="button danger" disabled=move || refund.pending().get()>{format!("Yes, refund {shown}")}</button>
                            <a class="button secondary" href=format!("/payments/{}", p.id)>"Do not refund"</a>
                        </div>
                    </ActionForm>
                </section>
            }
            .into_any()
        }
        (reviewing, checked) => {
            let error = checked.err().filter(|_| reviewing);
            let options = REASONS
                .iter()
                .map(|(v, label)| view! { <option value=*v selected=*v == reason.0>{*label}</option> })
                .collect_view();
            view! {
                <section class="card">
                    <h2>"Refund"</h2>
                    {error.clone().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
                    <details class="refund-step" open=error.is_some()>
                        <summary class="button secondary">"Refund this payment…"</summary>
                        <form method="get" action=format!("/payments/{}", p.id) class="stack-form">
                            <input type="hidden" name="review" value="refund"/>
                            <input type="hidden" name="key" value=key/>
                            <label>
                                "Amount " <input type="text" name="amount" inputmode="decimal" value=field("amount") placeholder=money::to_input(p.remaining, &cur)/>
                                <span class="muted small">{format!("Leave empty to refund all that remains: {remaining} ({}).", cur.to_uppercase())}</span>
                            </label>
                            <label>"Reason " <select name="reason">{options}</select></label>
                            <button type="submit" class="button">"Review refund…"</button>
                        </form>
                    </details>
                </section>
            }
            .into_any()
        }
    }
}
