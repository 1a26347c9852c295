//! The public pricing page and the pages customers come back to from Checkout.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::pricing::{checkout_result, pricing_plans, StartCheckout};

use crate::components::notice::error_text;
use crate::domain::money;
use crate::domain::pricing::{CheckoutOutcome, PlanPrice};

fn per(price: &PlanPrice) -> String {
    match (price.interval.as_deref(), price.interval_count) {
        (None, _) => "one-time".into(),
        (Some(unit), 1) => format!("per {unit}"),
        (Some(unit), n) => format!("every {n} {unit}s"),
    }
}

/// `/pricing?interval=month|year`: active plans grouped by product. The switch appears when both
/// monthly and yearly prices exist; it is a link, so it works without JavaScript.
#[component]
pub fn PricingPage() -> impl IntoView {
    let query = use_query_map();
    let plans = Resource::new(move || query.with(|q| q.get("account")), pricing_plans);
    let checkout = ServerAction::<StartCheckout>::new();
    view! {
        <Title text="Pricing"/>
        <div class="page-header">
            <h1>"Pricing"</h1>
        </div>
        {move || checkout.value().get().and_then(|r| r.err()).map(|e| view! {
            <p class="form-error" role="alert">{error_text(&e.to_string())}</p>
        })}
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let interval = query.with(|q| q.get("interval")).filter(|i| i == "year").unwrap_or_else(|| "month".into());
                plans.await.map(|data| {
                    let has = |unit: &str| data.products.iter().any(|p| p.prices.iter().any(|x| x.interval.as_deref() == Some(unit)));
                    let switch = (has("month") && has("year")).then(|| {
                        let monthly = interval == "month";
                        let seller = crate::components::query::account_suffix();
                        view! {
                            <nav class="tabs" aria-label="Billing period">
                                <a href=format!("/pricing?interval=month{seller}") aria-current=monthly.then_some("page")>"Monthly"</a>
                                <a href=format!("/pricing?interval=year{seller}") aria-current=(!monthly).then_some("page")>"Yearly"</a>
                            </nav>
                        }
                    });
                    if data.products.is_empty() {
                        return view! {
                            <section class="card"><p>"No plans are on sale right now."</p></section>
                        }.into_any();
                    }
                    let token = data.token.clone();
                    let account = data.account.clone();
                    let products = data.products.into_iter().map(|product| {
                        let account = account.clone();
                        // The chosen period's prices where the product has them; otherwise all.
                        let chosen: Vec<PlanPrice> = product.prices.iter().filter(|p| p.interval.as_deref() == Some(interval.as_str()) || p.interval.is_none()).cloned().collect();
                        let prices = if chosen.is_empty() { product.prices.clone() } else { chosen };
                        let token = token.clone();
                        let account = account.clone();
                        view! {
                            <section class="card plan" data-product=product.product_id.clone()>
                                <h2>{product.name.clone()}</h2>
                                {product.description.clone().map(|d| view! { <p class="muted">{d}</p> })}
                                {prices.into_iter().map(|price| {
                                    let label = money::format(price.unit_amount, &price.currency);
                                    let period = per(&price);
                                    let token = token.clone();
                                    let account = account.clone().map(|a| view! { <input type="hidden" name="account" value=a/> });
                                    view! {
                                        <div class="plan-price">
                                            <span class="amount">{label}</span> " " <span class="muted">{period}</span>
                                            {price.nickname.clone().map(|n| view! { <span class="muted small">" · " {n}</span> })}
                                            <ActionForm action=checkout attr:class="inline-form">
                                                <input type="hidden" name="price_id" value=price.id.clone()/>
                                                <input type="hidden" name="token" value=token/>
                                                {account}
                                                <button type="submit" class="button primary" disabled=move || checkout.pending().get()>"Choose"</button>
                                            </ActionForm>
                                        </div>
                                    }
                                }).collect_view()}
                            </section>
                        }
                    }).collect_view();
                    view! { {switch} <div class="plans">{products}</div> }.into_any()
                })
            })}
        </Suspense>
    }
}

/// `/checkout/success?session_id=…`: what Stripe says about the payment, checked on the server.
#[component]
pub fn CheckoutSuccessPage() -> impl IntoView {
    let query = use_query_map();
    let outcome = Resource::new(
        move || query.with(|q| (q.get("session_id").unwrap_or_default(), q.get("account"))),
        |(session_id, account)| checkout_result(session_id, account),
    );
    view! {
        <Title text="Your payment"/>
        <Suspense fallback=|| view! { <p class="muted">"Checking your payment…"</p> }>
            {move || Suspend::new(async move {
                match outcome.await {
                    Ok(Some(o)) => view! { <Outcome o/> }.into_any(),
                    Ok(None) => view! {
                        <section class="card">
                            <h1>"We could not find this checkout"</h1>
                            <p>"The link may be incomplete. If you paid, your receipt is on its way by email."</p>
                            <p><a class="button" href="/pricing">"See plans"</a></p>
                        </section>
                    }.into_any(),
                    Err(e) => view! {
                        <section class="card">
                            <h1>"One moment"</h1>
                            <p>{error_text(&e.to_string())}</p>
                        </section>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Outcome(o: CheckoutOutcome) -> impl IntoView {
    let (title, text) = match o.state.as_str() {
        "paid" => ("Thank you, you are all set", "Your payment was received."),
        "processing" => (
            "Your payment is processing",
            "Your bank is confirming the payment; this can take a few days. We will email you when it completes.",
        ),
        "open" => (
            "Your checkout is not finished",
            "No payment was taken. You can go back and complete it.",
        ),
        "expired" => (
            "This checkout has expired",
            "No payment was taken. Choose a plan again to start over.",
        ),
        _ => (
            "Your payment did not go through",
            "No payment was taken. Please try again or use another card.",
        ),
    };
    let rows = [
        ("Plan", o.plan.clone()),
        ("Amount", o.amount.clone()),
        ("Email", o.email.clone()),
        ("Subscription", o.subscription_status.clone()),
    ];
    view! {
        <section class="card" data-state=o.state.clone()>
            <h1>{title}</h1>
            <p>{text}</p>
            <dl class="config-list">
                {rows.into_iter().filter_map(|(k, v)| v.map(|v| view! { <dt>{k}</dt><dd data-field=k.to_lowercase()>{v}</dd> })).collect_view()}
            </dl>
            <p>
                {o.portal_link.clone().map(|href| view! { <a class="button" href=href>"Manage billing"</a> " " })}
                <a class="button secondary" href=plans_href()>"Back to plans"</a>
            </p>
        </section>
    }
}

/// The pricing page the customer came from (`?account=` carried back).
fn plans_href() -> String {
    let seller = crate::components::query::account_suffix();
    match seller.strip_prefix('&') {
        Some(query) => format!("/pricing?{query}"),
        None => "/pricing".to_string(),
    }
}

/// `/checkout/cancel`: nothing was charged.
#[component]
pub fn CheckoutCancelPage() -> impl IntoView {
    view! {
        <Title text="Checkout canceled"/>
        <section class="card">
            <h1>"Checkout canceled"</h1>
            <p>"No payment was taken. You can choose a plan whenever you are ready."</p>
            <p><a class="button" href=plans_href()>"Back to plans"</a></p>
        </section>
    }
}
