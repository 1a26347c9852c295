//! The overview. Until data arrives it is a checklist of what to do next, each step showing
//! whether this installation has done it.

use leptos::prelude::*;
use leptos_meta::Title;

use leptos_router::hooks::use_query_map;

use crate::api::overview::get_overview;

use crate::api::system::system_status;
use crate::components::chart::{Chart, Kind, Series};
use crate::domain::money;
use crate::domain::revenue::percent;
use crate::domain::revenue::OverviewData;
use crate::domain::system::InstallStatus;

#[component]
pub fn OverviewPage() -> impl IntoView {
    let query = use_query_map();
    let status = Resource::new(|| (), |_| system_status());
    let data = Resource::new(
        move || query.with(|q| (q.get("currency"), q.get("account"))),
        |(currency, account)| get_overview(currency, account),
    );
    view! {
        <Title text="Overview"/>
        <div class="page-header">
            <h1>"Overview"</h1>
        </div>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let status = status.await?;
                let months = query.with(|q| q.get("months")).filter(|m| m == "12").map_or(24, |_| 12);
                let body = match data.await? {
                    Some(d) => view! { <Dashboard d months/> }.into_any(),
                    None => view! { <GettingStarted status=status.clone()/> }.into_any(),
                };
                Ok::<_, ServerFnError>(view! { <WebhookWarnings status/> {body} })
            })}
        </Suspense>
    }
}

fn money_fmt(v: i64, currency: &str) -> String {
    money::format(v, currency)
}

fn count_fmt(v: i64, _: &str) -> String {
    money::count(v)
}

fn bp_fmt(v: i64, _: &str) -> String {
    percent(Some(v))
}

/// One figure: its value, what it means, where its definition and its rows are. `rows` opens
/// exactly the rows the figure adds up (same currency and period); a ratio without rows of its
/// own (LTV) has none and shows its inputs instead. A main figure (one of the four that lead)
/// also shows its change against the previous period and a sparkline.
#[component]
fn Kpi(
    label: &'static str,
    value: String,
    #[prop(optional, into)] note: String,
    definition: &'static str,
    #[prop(optional, into)] rows: Option<String>,
    /// For a main figure: its change, as text and tone (see `change`).
    #[prop(optional)]
    change: Option<(String, &'static str)>,
    /// For a main figure: the last months' values.
    #[prop(optional)]
    spark: Vec<i64>,
    /// A note with links to the rows of each part.
    #[prop(optional)]
    children: Option<Children>,
) -> AnyView {
    let class = if change.is_some() { "kpi main" } else { "kpi" };
    view! {
        <div class=class data-kpi=definition>
            <div class="kpi-label">
                {label} " "
                <a class="kpi-help" href=format!("/definitions#{definition}") title="How this is computed">"?"</a>
            </div>
            {match rows {
                Some(rows) => view! { <a class="kpi-value" href=rows>{value}</a> }.into_any(),
                None => view! { <span class="kpi-value">{value}</span> }.into_any(),
            }}
            {(!note.is_empty()).then(|| view! { <div class="kpi-note muted small">{note}</div> })}
            {children.map(|c| view! { <div class="kpi-note muted small">{c()}</div> })}
            {change.map(|(text, tone)| view! { <div class=format!("kpi-change tone-{tone}") data-test="kpi-change">{text}</div> })}
            {sparkline(&spark)}
        </div>
    }
    .into_any()
}

/// A tiny line of the last months' values (decoration: the figures are in the text beside it).
fn sparkline(values: &[i64]) -> AnyView {
    if values.len() < 2 {
        return ().into_any();
    }
    let (lo, hi) = values
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let span = (hi - lo).max(1) as f64;
    let step = 100.0 / (values.len() - 1) as f64;
    let points = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, 22.0 - (v - lo) as f64 / span * 20.0))
        .collect::<Vec<_>>()
        .join(" ");
    view! {
        <svg class="sparkline" viewBox="0 0 100 24" preserveAspectRatio="none" aria-hidden="true">
            <polyline points=points vector-effect="non-scaling-stroke"></polyline>
        </svg>
    }
    .into_any()
}

/// "+$864.00 (+9.35%) vs 30 days ago": a change, its direction as a tone (`up_is_good` says
/// which way is good news), without a percent when there was nothing before.
fn change(
    now: i64,
    before: i64,
    fmt: &dyn Fn(i64) -> String,
    against: &str,
    up_is_good: bool,
) -> (String, &'static str) {
    let delta = now - before;
    let sign = if delta > 0 { "+" } else { "" };
    let pct = (before > 0).then(|| {
        let bp = (2 * delta.abs() * 10_000 + before) / (2 * before);
        format!(" ({}{})", if delta < 0 { "-" } else { sign }, percent(Some(bp)))
    });
    let tone = match (delta.signum(), up_is_good) {
        (0, _) => "flat",
        (1, true) | (-1, false) => "good",
        _ => "bad",
    };
    (
        format!("{sign}{}{} {against}", fmt(delta), pct.unwrap_or_default()),
        tone,
    )
}

#[component]
fn Dashboard(d: OverviewData, months: usize) -> AnyView {
    let c = d.currency.clone();
    let k = d.kpis.clone();
    let m = |v: i64| money::format(v, &c);
    let acct = crate::components::query::account_suffix();
    let cq = format!("currency={c}{acct}");
    let switch = (d.currencies.len() > 1).then(|| {
        let links = d
            .currencies
            .iter()
            .map(|cur| {
                let current = *cur == c;
                view! { <a href=format!("/?currency={cur}&months={months}{acct}") aria-current=current.then_some("page")>{cur.to_uppercase()}</a> }
            })
            .collect_view();
        view! { <nav class="tabs" aria-label="Currency">{links}</nav> }
    });
    let mrr_points: Vec<_> = d.mrr_months.iter().skip(24 - months.min(24)).cloned().collect();
    let labels: Vec<String> = mrr_points.iter().map(|p| p.month.clone()).collect();
    let pick = |f: fn(&crate::domain::revenue::MonthPoint) -> i64| mrr_points.iter().map(f).collect::<Vec<_>>();
    // Each month's window for the links to its rows: `since` the second before it starts,
    // `through` its last second (or now, for the open month).
    let span =
        |label: &str| crate::domain::revenue::month_span(label).map(|(start, next)| (start - 1, (next - 1).min(d.now)));
    let links = |labels: &[String], href: &dyn Fn(&str, i64, i64) -> String| -> Vec<String> {
        labels
            .iter()
            .map(|l| {
                span(l)
                    .map(|(since, through)| href(l, since, through))
                    .unwrap_or_default()
            })
            .collect()
    };
    // MRR at a month's end is every movement up to then.
    let mrr_links = links(&labels, &|_, _, through| format!("/revenue?{cq}&through={through}"));
    let kind_links: std::collections::HashMap<&str, Vec<String>> =
        ["new", "expansion", "reactivation", "contraction", "churn"]
            .into_iter()
            .map(|kind| {
                (
                    kind,
                    links(&labels, &|l, _, _| format!("/revenue?{cq}&kind={kind}&month={l}")),
                )
            })
            .collect();
    let kind_links = |kind: &str| kind_links.get(kind).cloned().unwrap_or_default();
    let revenue_months: Vec<_> = d.revenue_months.iter().skip(24 - months.min(24)).cloned().collect();
    let rev_labels: Vec<String> = revenue_months.iter().map(|p| p.month.clone()).collect();
    let rev = |f: fn(&crate::domain::revenue::MonthPoint) -> i64| revenue_months.iter().map(f).collect::<Vec<_>>();
    let rev_links = |list_and_tab: &str| {
        links(&rev_labels, &|_, since, through| {
            format!("/{list_and_tab}&{cq}&since={since}&through={through}")
        })
    };
    let (gross_links, refund_links, failed_links) = (
        rev_links("payments?status=succeeded"),
        rev_links("refunds?status=counted"),
        rev_links("payments?status=failed"),
    );
    let failed_rate: Vec<i64> = revenue_months
        .iter()
        .map(|p| {
            if p.payments > 0 {
                (2 * p.failed_payments * 10_000 + p.payments) / (2 * p.payments)
            } else {
                0
            }
        })
        .collect();
    let subscribers: Vec<_> = d.subscribers.iter().skip(24 - months.min(24)).collect();
    let sub_labels: Vec<String> = subscribers.iter().map(|(mo, _)| mo.clone()).collect();
    let sub_values: Vec<i64> = subscribers.iter().map(|(_, n)| *n).collect();
    // The 30-day figures' rows: the same window, `since` excluded and `through` included.
    let window = format!("since={}&through={}", d.now - crate::domain::revenue::WINDOW, d.now);
    let active = format!("/subscriptions?status=active&{cq}");
    let paying = format!("/customers?status=paying&{cq}");
    let churn = format!("/revenue?{cq}&kind=churn&{window}");
    let count = money::count;
    let net_parts = [
        (
            "gross",
            format!("/payments?status=succeeded&{cq}&{window}"),
            format!("{} gross", m(k.gross_30d)),
        ),
        (
            "refunds",
            format!("/refunds?status=counted&{cq}&{window}"),
            format!("{} refunds", m(k.refunds_30d)),
        ),
        (
            "disputes",
            format!("/disputes?status=lost&{cq}&{window}"),
            format!("{} disputes lost", m(k.disputes_lost_30d)),
        ),
    ];
    let converted_href = format!("/subscriptions?status=active&on=trial_end&{cq}&{window}");
    let (converted, ended) = (count(k.trials_converted_30d), count(k.trials_ended_30d));
    // The last 12 months, for the sparklines.
    let last12 = |f: fn(&crate::domain::revenue::MonthPoint) -> i64, points: &[crate::domain::revenue::MonthPoint]| {
        points.iter().rev().take(12).rev().map(f).collect::<Vec<_>>()
    };
    let money_change = |v: i64| m(v);
    let count_change = |v: i64| count(v);
    let subscriber_spark: Vec<i64> = d.subscribers.iter().rev().take(12).rev().map(|(_, n)| *n).collect();
    let main = view! {
        <section class="kpis main" aria-label="Main figures">
            <Kpi label="MRR" value=m(k.mrr) definition="mrr" rows=active.clone()
                change=change(k.mrr, k.mrr_30d_ago, &money_change, "vs 30 days ago", true)
                spark=last12(|p| p.mrr, &d.mrr_months)/>
            <Kpi label="Net revenue (30 days)" value=m(k.net_revenue_30d) definition="net-revenue" rows=net_parts[0].1.clone()
                change=change(k.net_revenue_30d, k.net_revenue_prev_30d, &money_change, "vs the 30 days before", true)
                spark=last12(|p| p.net, &d.revenue_months)>
                {net_parts.into_iter().enumerate().map(|(i, (part, href, text))| view! {
                    {(i > 0).then_some(" − ")}
                    <a data-part=part href=href>{text}</a>
                }).collect_view()}
            </Kpi>
            <Kpi label="Active subscriptions" value=count(k.active_subscriptions) definition="active-subscriptions" rows=active.clone()
                change=change(k.active_subscriptions, k.subscriptions_30d_ago, &count_change, "vs 30 days ago", true)
                spark=subscriber_spark/>
            <Kpi label="Churned MRR (30 days)" value=m(k.churned_mrr_30d) definition="churned-mrr" rows=churn.clone()
                change=change(k.churned_mrr_30d, k.churned_mrr_prev_30d, &money_change, "vs the 30 days before", false)
                spark=last12(|p| -p.churn, &d.mrr_months)/>
        </section>
    }
    .into_any();
    let kpis = view! {
        {main}
        <div class="kpi-groups">
        <section class="kpis" aria-labelledby="kpis-growth">
            <h2 class="kpi-group" id="kpis-growth">"Revenue"</h2>
            <Kpi label="ARR" value=m(k.arr) note="MRR × 12" definition="arr" rows=active.clone()/>
            <Kpi label="New MRR this month" value=m(k.new_mrr_this_month) definition="new-mrr" rows=format!("/revenue?kind=new&month={}&{cq}", d.mrr_months.last().map(|p| p.month.clone()).unwrap_or_default())/>
            <Kpi label="Open failed payments" value=count(k.open_failed_invoices) note=format!("{} still owed", m(k.open_failed_amount)) definition="failed-payments" rows=format!("/invoices?status=failed&{cq}")/>
        </section>
        <section class="kpis" aria-labelledby="kpis-customers">
            <h2 class="kpi-group" id="kpis-customers">"Customers"</h2>
            <Kpi label="Active customers" value=count(k.active_customers) definition="active-customers" rows=paying.clone()/>
            <Kpi label="ARPU" value=m(k.arpu) note="MRR per active customer" definition="arpu" rows=paying/>
            <Kpi label="LTV" value=k.ltv.map(m).unwrap_or_else(|| "—".into()) note=format!("ARPU {} ÷ customer churn {}", m(k.arpu), percent(k.customer_churn_bp)) definition="ltv"/>
            <Kpi label="Trials" value=count(k.trials) definition="trials" rows=format!("/subscriptions?status=trialing&{cq}")/>
            <Kpi label="Trial conversion (30 days)" value=percent(k.trial_conversion_bp) definition="trial-conversion" rows=format!("/subscriptions?status=trial_ended&on=trial_end&{cq}&{window}")>
                <a data-part="converted" href=converted_href>{converted}</a>
                {format!(" of {ended} trials ended in 30 days converted")}
            </Kpi>
        </section>
        <section class="kpis" aria-labelledby="kpis-churn">
            <h2 class="kpi-group" id="kpis-churn">"Churn (30 days)"</h2>
            <Kpi label="Churned customers" value=count(k.churned_customers_30d) note=format!("{} MRR lost", m(k.churned_mrr_30d)) definition="churned-customers" rows=churn.clone()/>
            <Kpi label="Customer churn" value=percent(k.customer_churn_bp) note=format!("{} of {} paying customers", count(k.churned_customers_30d), count(k.customers_30d_ago)) definition="customer-churn" rows=churn/>
            <Kpi label="Revenue churn" value=percent(k.revenue_churn_bp) note=format!("{} lost of {}", m(k.churned_mrr_30d + k.contraction_mrr_30d), m(k.mrr_30d_ago)) definition="revenue-churn" rows=format!("/revenue?{cq}&kind=churn,contraction&{window}")/>
        </section>
        </div>
    }
    .into_any();
    let whole = 10i64.pow(money::decimals(&c));
    let mrr_card = view! {
        <section class="card">
            <div class="card-header">
                <h2>"MRR"</h2>
                <nav class="tabs small" aria-label="Period">
                    <a href=format!("/?{cq}&months=12") aria-current=(months == 12).then_some("page")>"12 months"</a>
                    <a href=format!("/?{cq}&months=24") aria-current=(months == 24).then_some("page")>"24 months"</a>
                </nav>
            </div>
            <Chart title="MRR" months=labels.clone() kind=Kind::Line format=money_fmt axis_format=money::format_whole whole unit=c.clone()
                series=vec![Series { name: "MRR", class: "s-mrr", values: pick(|p| p.mrr), links: mrr_links }]/>
            <h3>"MRR movements"</h3>
            <Chart title="MRR movements" months=labels.clone() kind=Kind::Stacked format=money_fmt axis_format=money::format_whole whole unit=c.clone()
                series=vec![
                    Series { name: "New", class: "s-new", values: pick(|p| p.new), links: kind_links("new") },
                    Series { name: "Expansion", class: "s-expansion", values: pick(|p| p.expansion), links: kind_links("expansion") },
                    Series { name: "Reactivation", class: "s-reactivation", values: pick(|p| p.reactivation), links: kind_links("reactivation") },
                    Series { name: "Contraction", class: "s-contraction", values: pick(|p| p.contraction), links: kind_links("contraction") },
                    Series { name: "Churn", class: "s-churn", values: pick(|p| p.churn), links: kind_links("churn") },
                ]/>
            <p><a href=format!("/revenue?{cq}")>"Every movement, with its subscription and event →"</a></p>
        </section>
    }
    .into_any();
    let others = view! {
        <div class="chart-grid">
            <section class="card">
                <h2>"Revenue per month"</h2>
                <Chart title="Revenue" months=rev_labels.clone() kind=Kind::Grouped format=money_fmt axis_format=money::format_whole whole unit=c.clone()
                    series=vec![
                        Series { name: "Gross", class: "s-gross", values: rev(|p| p.gross), links: gross_links },
                        Series { name: "Refunds", class: "s-refunds", values: rev(|p| p.refunds), links: refund_links },
                        Series { name: "Net", class: "s-net", values: rev(|p| p.net), links: Vec::new() },
                    ]/>
            </section>
            <section class="card">
                <h2>"Active subscribers"</h2>
                <Chart title="Active subscribers" months=sub_labels kind=Kind::Grouped format=count_fmt axis_format=count_fmt
                    series=vec![Series { name: "Subscribers", class: "s-mrr", values: sub_values, links: Vec::new() }]/>
            </section>
            <section class="card">
                <h2>"Failed-payment rate"</h2>
                <Chart title="Failed-payment rate" months=rev_labels.clone() kind=Kind::Grouped format=bp_fmt axis_format=crate::domain::revenue::percent_whole whole=100
                    series=vec![Series { name: "Failed payments", class: "s-churn", values: failed_rate, links: failed_links }]/>
            </section>
        </div>
    }
    .into_any();
    let stale = crate::components::time::stale_note(d.as_of).map(|note| view! { <p>{note}</p> });
    view! { {switch} {stale} {kpis} {mrr_card} {others} }.into_any()
}

#[component]
fn GettingStarted(status: InstallStatus) -> impl IntoView {
    let key_detail = match &status.stripe_mode {
        Some(mode) => format!("Connected in {mode} mode."),
        None => {
            "Set STRIPE_SECRET_KEY (sk_test_… from the Stripe dashboard → Developers → API keys) and restart Tally."
                .into()
        }
    };
    let webhook_detail = if status.webhooks_configured() {
        format!(
            "{} signing secret{} configured. Events are received at {}.",
            status.webhook_secret_count,
            if status.webhook_secret_count == 1 { "" } else { "s" },
            status.webhook_url()
        )
    } else {
        "Set STRIPE_WEBHOOK_SECRET to the whsec_… secret that stripe listen prints (or that the dashboard shows for your endpoint), and restart Tally.".into()
    };
    view! {
        <section class="card getting-started">
            <h2>"Connect Stripe to see your numbers"</h2>
            <p class="muted">
                "Tally has no billing data yet. It fills up from Stripe's webhooks and from a backfill of your history."
            </p>
            <ol class="steps">
                <Step done=status.stripe_configured() title="Set your Stripe API key" detail=key_detail/>
                <Step done=status.webhooks_configured() title="Forward Stripe's events to Tally" detail=webhook_detail>
                    <pre class="command"><code>"stripe listen --forward-to localhost:3000/stripe/webhook"</code></pre>
                </Step>
                <Step
                    done=false
                    title="Run a backfill"
                    detail="Import the customers, subscriptions, invoices and payments that existed before Tally was connected. It resumes where it stopped if interrupted.".to_string()
                >
                    <pre class="command"><code>"tally sync"</code></pre>
                </Step>
            </ol>
        </section>
    }
}

#[component]
fn Step(
    done: bool,
    title: &'static str,
    detail: String,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <li class="step" class:done=done>
            <span class="step-mark" aria-hidden="true">{if done { "✓" } else { "" }}</span>
            <div>
                <h3>
                    {title}
                    <span class="visually-hidden">{if done { " (done)" } else { " (to do)" }}</span>
                </h3>
                <p class="muted">{detail}</p>
                {children.map(|c| c())}
            </div>
        </li>
    }
}

/// Failing events and a silent webhook endpoint are the two ways data quietly goes stale.
#[component]
fn WebhookWarnings(status: InstallStatus) -> impl IntoView {
    let failed = (status.webhook_failed > 0).then(|| {
        let n = status.webhook_failed;
        view! {
            <p class="warning" role="alert">
                {format!("{n} webhook event{} could not be applied. ", if n == 1 { "" } else { "s" })}
                <a href="/webhooks?status=failed">"See the failed events"</a>
            </p>
        }
    });
    let silent = status.webhook_silent_for.map(|secs| {
        let hours = secs / 3600;
        view! {
            <p class="warning" role="alert">
                {format!(
                    "No webhook has arrived for {}. Check that Stripe (or stripe listen) still sends events to {}.",
                    if hours >= 48 { format!("{} days", hours / 24) } else { format!("{hours} hours") },
                    status.webhook_url()
                )}
            </p>
        }
    });
    let incomplete = (status.incomplete_subscriptions > 0 || status.incomplete_invoices > 0).then(|| {
        let (subs, invoices) = (status.incomplete_subscriptions, status.incomplete_invoices);
        let how = if status.stripe_configured() {
            "Tally is fetching the rest from Stripe."
        } else {
            "Set STRIPE_SECRET_KEY so Tally fetches the rest, or run tally sync."
        };
        view! {
            <p class="warning" role="alert" data-test="incomplete-lists">
                {format!(
                    "Stripe sent only part of the items of {subs} subscription{} and of the lines of {invoices} invoice{}: MRR counts only the items received. {how}",
                    if subs == 1 { "" } else { "s" },
                    if invoices == 1 { "" } else { "s" },
                )}
            </p>
        }
    });
    view! { {failed} {silent} {incomplete} }
}
