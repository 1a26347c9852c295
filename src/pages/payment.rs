//! `/payments/{id}`: one payment, its refunds, and the refund form (admins and owners).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::billing::{payment_detail, PaymentView, RefundPayment};
use crate::components::notice::action_message;
use crate::components::table::TableCard;
use crate::components::time::format_utc;
use crate::domain::money;

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
                <dt>"Status"</dt><dd data-field="status">{p.status.clone().unwrap_or_default()}</dd>
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
        {can_refund.then(|| {
            let default_amount = money::to_input(p.remaining, &p.currency);
            let hint = format!("Up to {} ({})", money::format(p.remaining, &p.currency), p.currency.to_uppercase());
            view! {
                <section class="card">
                    <h2>"Refund"</h2>
                    <ActionForm action=refund attr:class="stack-form" attr:id="refund-form">
                        <input type="hidden" name="charge_id" value=p.id.clone()/>
                        <input type="hidden" name="idempotency_key" value=p.form_key.clone()/>
                        <label>
                            "Amount " <input type="text" name="amount" inputmode="decimal" value=default_amount required/>
                            <span class="muted small">" " {hint}</span>
                        </label>
                        <label>
                            "Reason "
                            <select name="reason">
                                <option value="requested_by_customer">"Requested by the customer"</option>
                                <option value="duplicate">"Duplicate"</option>
                                <option value="fraudulent">"Fraudulent"</option>
                            </select>
                        </label>
                        <label>"Internal note " <textarea name="note" maxlength="500" rows="2"></textarea></label>
                        <button type="submit" class="button primary" disabled=move || refund.pending().get()>"Refund"</button>
                    </ActionForm>
                </section>
            }
        })}
        <TableCard title="Refunds" headers=&["Id", "Date (UTC)", "Status", "Amount", "Reason", "By"] numeric=&[3] empty=refunds_empty>
            {p.refunds.into_iter().map(|r| {
                let amount = money::format(r.amount, &p.currency);
                let id = r.id.clone();
                view! {
                    <tr data-refund=id>
                        <td class="mono small">{r.id}</td>
                        <td class="nowrap">{r.created.map(format_utc).unwrap_or_default()}</td>
                        <td class="refund-status">{r.status.unwrap_or_default()}</td>
                        <td class="num">{amount}</td>
                        <td>{r.reason.unwrap_or_default()}</td>
                        <td class="small">{r.requested_by.unwrap_or_default()} {r.note.map(|n| view! { <div class="muted">{n}</div> })}</td>
                    </tr>
                }
            }).collect_view()}
        </TableCard>
    }
}
