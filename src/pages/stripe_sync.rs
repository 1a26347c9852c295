//! Settings → Stripe sync: start a backfill and watch it (per type: fetched, applied, rate, ETA),
//! reconcile missed events, and check for drift. Progress refreshes every two seconds while a job runs.

use leptos::prelude::*;
use leptos_meta::{Meta, Title};

use crate::api::stripe_sync::{sync_overview, StartDrift, StartReconcile, StartSync, StopSync};

use crate::components::notice::action_message;
use crate::components::settings_tabs::SettingsTabs;
use crate::components::table::DataTable;
use crate::components::time::format_utc;
use crate::domain::sync_report::SyncPageData;
use crate::domain::sync_report::{DiffKind, JobRun};

/// The types a backfill can fetch, in its order.
const TYPES: [&str; 10] = [
    "products",
    "prices",
    "customers",
    "subscriptions",
    "invoices",
    "payment_intents",
    "charges",
    "refunds",
    "disputes",
    "checkout_sessions",
];

fn duration(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

fn run_line(run: &JobRun) -> String {
    let by = match (&run.requested_by, run.trigger.as_str()) {
        (Some(email), _) => format!("by {email}"),
        (None, "schedule") => "on schedule".into(),
        (None, "cli") => "from the command line".into(),
        (None, other) => other.to_string(),
    };
    let when = format_utc(run.started_at);
    match (run.status.as_str(), run.finished_at) {
        ("running", _) => format!("Running since {when}, {by}."),
        ("stopped", Some(end)) => format!(
            "Stopped {} ({by}); it resumes where it stopped when started again.",
            format_utc(end)
        ),
        ("failed", _) => format!(
            "Failed (started {when}, {by}): {}",
            run.error.clone().unwrap_or_default()
        ),
        ("partial", Some(end)) => format!(
            "Partial: finished {} ({} after starting, {by}); types the Stripe key may not read were skipped.",
            format_utc(end),
            duration(end - run.started_at)
        ),
        (_, Some(end)) => format!(
            "Finished {} ({} after starting, {by}).",
            format_utc(end),
            duration(end - run.started_at)
        ),
        _ => format!("Started {when}, {by}."),
    }
}

#[component]
pub fn StripeSyncPage() -> impl IntoView {
    let sync = ServerAction::<StartSync>::new();
    let stop = ServerAction::<StopSync>::new();
    let reconcile = ServerAction::<StartReconcile>::new();
    let drift = ServerAction::<StartDrift>::new();
    let query = leptos_router::hooks::use_query_map();
    let overview = Resource::new(
        move || {
            (
                sync.version().get(),
                stop.version().get(),
                reconcile.version().get(),
                drift.version().get(),
                query.with(|q| q.get("account")),
            )
        },
        |(_, _, _, _, account)| sync_overview(account),
    );
    view! {
        <Title text="Stripe sync"/>
        <div class="page-header">
            <h1>"Settings"</h1>
        </div>
        <SettingsTabs/>
        {action_message(sync)}
        {action_message(stop)}
        {action_message(reconcile)}
        {action_message(drift)}
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                overview.await.map(|o| {
                    // While a job runs the page reloads itself every two seconds (with or
                    // without JavaScript); it stops once nothing runs.
                    let refresh = o.busy().then(|| view! { <Meta http_equiv="refresh" content="2"/> });
                    view! {
                        {refresh}
                        <SyncCards o=o sync stop reconcile drift/>
                    }
                })
            })}
        </Transition>
    }
}

#[component]
fn SyncCards(
    o: SyncPageData,
    sync: ServerAction<StartSync>,
    stop: ServerAction<StopSync>,
    reconcile: ServerAction<StartReconcile>,
    drift: ServerAction<StartDrift>,
) -> impl IntoView {
    let not_configured = (!o.stripe_configured).then(|| {
        view! {
            <p class="notice warning">
                "Stripe is not configured: set STRIPE_SECRET_KEY (a restricted key with read access is enough for sync) and restart Tally."
            </p>
        }
    });
    let disabled = !o.stripe_configured;
    let sync_busy = o.last_sync.as_ref().is_some_and(|j| j.status == "running");
    let types = o.types.clone();
    let dashboard = o.dashboard.clone();
    let last_sync = o.last_sync.as_ref().map(run_line);
    let reconciliations = o.reconciliations.clone();
    let drift_report = o.drift.clone();
    let drift_line = o.last_drift.as_ref().map(run_line);
    let hidden = {
        let account = o.account.clone();
        move || view! { <input type="hidden" name="account" value=account.clone()/> }
    };
    let (hidden_reconcile, hidden_drift, hidden_stop) = (hidden.clone(), hidden.clone(), hidden.clone());
    let stop_form = sync_busy.then(|| {
        view! {
            <ActionForm action=stop attr:class="inline-form">
                {hidden_stop()}
                <button type="submit" class="button" data-test="sync-stop">"Stop"</button>
                <span class="muted small">" The pages being fetched are applied; Sync from Stripe resumes where it stopped."</span>
            </ActionForm>
        }
    });
    let rate = o.request_rate().map(|(rate, limit)| {
        let limit = limit
            .map(|l| format!(" of the {l} a second Tally allows itself"))
            .unwrap_or_default();
        view! { <p class="small" data-test="sync-rate">{format!("Requests to Stripe: {rate:.1} a second{limit}.")}</p> }
    });
    view! {
        {not_configured}
        <p class="muted" data-test="sync-account">
            "For the Stripe account " <strong>{o.account_name.clone()}</strong> " (" <code>{o.account.clone()}</code> "); another account: pick it in the account menu."
        </p>
        <section class="card" id="sync">
            <h2>"Sync from Stripe"</h2>
            <p class="muted">
                "Imports what happened before webhooks were set up: every type, all statuses, through the same code as webhooks. Newer data always wins, so it is safe while webhooks arrive. An interrupted sync resumes where it stopped."
            </p>
            <ActionForm action=sync attr:class="stack-form">
                {hidden()}
                <label>
                    "Only objects created since (optional) "
                    <input type="date" name="since"/>
                </label>
                <label>
                    "Only these types (optional, comma-separated) "
                    <input type="text" name="types" placeholder=TYPES.join(", ") list="sync-types"/>
                </label>
                <label class="checkbox">
                    <input type="checkbox" name="restart" value="true"/>
                    " Start over instead of resuming"
                </label>
                <button type="submit" class="button primary" disabled=disabled || sync_busy>
                    {if sync_busy { "Sync running…" } else { "Sync from Stripe" }}
                </button>
            </ActionForm>
            {last_sync.map(|line| view! { <p class="small" data-test="sync-status">{line}</p> })}
            {stop_form}
            {rate}
            {(!types.is_empty()).then(|| view! {
                <DataTable headers=&["Type", "Fetched", "Applied", "Pages", "Rate", "ETA", "State"] numeric=&[1, 2, 3, 4] class="sync-progress">
                    {types.into_iter().map(|t| {
                        let eta = match (t.done, t.eta_secs) {
                            (true, _) => "—".to_string(),
                            (false, Some(s)) => duration(s),
                            (false, None) => "unknown".to_string(),
                        };
                        let state = if t.skipped.is_some() { "skipped" } else if t.done { "done" } else if t.fetched > 0 { "fetching" } else { "waiting" };
                        let skipped = t.skipped.clone().map(|why| view! { <div class="muted small">{why}</div> });
                        view! {
                            <tr>
                                <td>{t.resource}{skipped}</td>
                                <td class="num">{t.fetched}</td>
                                <td class="num">{t.applied}</td>
                                <td class="num">{t.pages}</td>
                                <td class="num">{format!("{}/s", t.rate)}</td>
                                <td>{eta}</td>
                                <td><span class=format!("badge {}", if t.done { "ok" } else { "pending" })>{state}</span></td>
                            </tr>
                        }
                    }).collect_view()}
                </DataTable>
                <p class="muted small">"ETA is estimated from the rows Tally already has of each type; Stripe does not say how many it holds."</p>
            })}
        </section>
        <section class="card" id="reconcile">
            <h2>"Reconciliation"</h2>
            <p class="muted">
                "Lists Stripe's events of the last days and applies any Tally never received (Stripe keeps events for 30 days). Schedule: "
                {o.reconcile_schedule.clone()} "."
            </p>
            <ActionForm action=reconcile attr:class="inline-form">
                {hidden_reconcile()}
                <label>"Days " <input type="number" name="days" min="1" max="30" value="3"/></label>
                <button type="submit" class="button" disabled=disabled>"Reconcile now"</button>
            </ActionForm>
            {(!reconciliations.is_empty()).then(|| view! {
                <DataTable headers=&["Run", "Days", "Listed", "Missing"] numeric=&[1, 2, 3] class="reconcile-runs">
                    {reconciliations.into_iter().map(|(run, report)| {
                        let skipped = report.as_ref().and_then(|r| r.skipped.clone());
                        let (days, listed, missing) = report
                            .map(|r| (r.days.to_string(), r.listed.to_string(), r.missing.to_string()))
                            .unwrap_or_default();
                        view! {
                            <tr>
                                <td>{run_line(&run)}{skipped.map(|why| view! { <div class="muted small">{why}</div> })}</td>
                                <td class="num">{days}</td>
                                <td class="num">{listed}</td>
                                <td class="num">{missing}</td>
                            </tr>
                        }
                    }).collect_view()}
                </DataTable>
            })}
        </section>
        <section class="card" id="drift">
            <h2>"Drift report"</h2>
            <p class="muted">
                "Compares Tally's rows with Stripe's, type by type: counts, statuses, amounts. Also available as "
                <code>"tally drift"</code> " (exit code 2 on drift, for cron)."
            </p>
            <ActionForm action=drift attr:class="inline-form">
                {hidden_drift()}
                <button type="submit" class="button" disabled=disabled>"Check for drift"</button>
            </ActionForm>
            {drift_line.map(|line| view! { <p class="small">{line}</p> })}
            {drift_report.map(|report| {
                let partial = report.partial().then(|| view! {
                    <p class="notice warning" data-test="drift-partial">"Partial: some types could not be read with this Stripe key and were not compared (see the table)."</p>
                });
                let verdict = if report.has_drift() {
                    format!("{} differences found (checked {}).", report.total_differences, format_utc(report.checked_at))
                } else {
                    format!("No drift: Tally matches Stripe (checked {}).", format_utc(report.checked_at))
                };
                let listed = report.differences.len() as i64;
                let more = (report.total_differences > listed)
                    .then(|| format!("Showing the first {listed}; run tally drift for all."));
                view! {
                    <p class=if report.has_drift() { "notice warning" } else { "notice" } data-test="drift-verdict">{verdict}</p>
                    {partial}
                    <DataTable headers=&["Type", "At Stripe", "In Tally", "Missing here", "Not at Stripe", "Changed"] numeric=&[1, 2, 3, 4, 5]>
                        {report.types.into_iter().map(|t| view! {
                            <tr>
                                <td>{t.resource}{t.skipped.map(|why| view! { <div class="muted small">"skipped: " {why}</div> })}</td>
                                <td class="num">{t.at_stripe}</td>
                                <td class="num">{t.here}</td>
                                <td class="num">{t.missing_here}</td>
                                <td class="num">{t.not_at_stripe}</td>
                                <td class="num">{t.changed}</td>
                            </tr>
                        }).collect_view()}
                    </DataTable>
                    {(!report.differences.is_empty()).then(|| view! {
                        <h3>"Differences"</h3>
                        <DataTable headers=&["Object", "Difference", "In Tally", "At Stripe"] class="drift-differences">
                            {report.differences.into_iter().map(|d| {
                                let stripe_href = format!("{dashboard}{}/{}", dashboard_segment(&d.resource), d.id);
                                let tally_href = (d.resource == "customers").then(|| format!("/customers/{}", d.id));
                                let what = match d.kind {
                                    DiffKind::MissingHere => "missing in Tally".to_string(),
                                    DiffKind::NotAtStripe => "not listed by Stripe".to_string(),
                                    DiffKind::Changed => format!("{} differs", d.field.clone().unwrap_or_default()),
                                };
                                view! {
                                    <tr>
                                        <td>
                                            <span class="muted small">{d.resource.clone()} " "</span>
                                            {match tally_href {
                                                Some(href) => view! { <a href=href class="mono">{d.id.clone()}</a> }.into_any(),
                                                None => view! { <span class="mono">{d.id.clone()}</span> }.into_any(),
                                            }}
                                            " " <a href=stripe_href target="_blank" rel="noopener noreferrer" class="small">"Stripe ↗"</a>
                                        </td>
                                        <td>{what}</td>
                                        <td class="mono">{d.here.unwrap_or_else(|| "—".into())}</td>
                                        <td class="mono">{d.stripe.unwrap_or_else(|| "—".into())}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </DataTable>
                        {more.map(|m| view! { <p class="muted small">{m}</p> })}
                    })}
                }
            })}
        </section>
    }
}

/// The path of a type's objects in Stripe's dashboard.
fn dashboard_segment(resource: &str) -> &'static str {
    match resource {
        "customers" => "customers",
        "products" => "products",
        "prices" => "prices",
        "subscriptions" => "subscriptions",
        "invoices" => "invoices",
        "refunds" => "refunds",
        "disputes" => "disputes",
        "checkout_sessions" => "checkout/sessions",
        _ => "payments",
    }
}
