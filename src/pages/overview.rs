//! The overview. Until data arrives it is a checklist of what to do next, each step showing
//! whether this installation has done it.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::system::{system_status, InstallStatus};

#[component]
pub fn OverviewPage() -> impl IntoView {
    let status = Resource::new(|| (), |_| system_status());
    view! {
        <Title text="Overview"/>
        <div class="page-header">
            <h1>"Overview"</h1>
        </div>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                status.await.map(|s| view! { <WebhookWarnings status=s.clone()/> <GettingStarted status=s/> })
            })}
        </Suspense>
    }
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
    view! { {failed} {silent} }
}
