//! Settings → Stripe sync: backfill with live progress, reconciliation and the drift report.

use leptos::prelude::*;

use crate::domain::sync_report::SyncPageData;

#[server(endpoint = "stripe-sync/overview")]
pub async fn sync_overview() -> Result<SyncPageData, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    use crate::state::AppState;
    use crate::sync::jobs::{self, JobKind};

    require_role(Role::Viewer)?;
    let state = AppState::from_context()?;
    let db = &state.db;
    let failed = |e: crate::db::DbError| super::internal("reading the sync state failed", e);
    let types = crate::sync::status(db)
        .await
        .map_err(|e| super::internal("reading the sync state failed", e))?;
    let last_sync = jobs::latest(db, JobKind::Sync, 1).await.map_err(failed)?.pop();
    let reconciliations = jobs::latest(db, JobKind::Reconcile, 5)
        .await
        .map_err(failed)?
        .into_iter()
        .map(|run| {
            let report = run.summary.as_deref().and_then(|s| serde_json::from_str(s).ok());
            (run, report)
        })
        .collect();
    let last_drift = jobs::latest(db, JobKind::Drift, 1).await.map_err(failed)?.pop();
    let drift = last_drift
        .as_ref()
        .filter(|run| run.status == "done" || run.status == "partial")
        .and_then(|run| run.summary.as_deref())
        .and_then(|s| serde_json::from_str(s).ok());
    let settings = &state.config.reconcile;
    let reconcile_schedule = match settings.interval {
        Some(every) if state.config.stripe_key.is_some() => {
            let secs = every.as_secs();
            let every = if secs % 3600 == 0 {
                format!("{}h", secs / 3600)
            } else if secs % 60 == 0 {
                format!("{}m", secs / 60)
            } else {
                format!("{secs}s")
            };
            format!("every {every}, over the last {} days", settings.days)
        }
        _ => "off".to_string(),
    };
    Ok(SyncPageData {
        stripe_configured: state.config.stripe_key.is_some(),
        dashboard: match state.config.stripe_mode() {
            Some(mode) if mode.is_live() => "https://dashboard.stripe.com/".into(),
            _ => "https://dashboard.stripe.com/test/".into(),
        },
        types,
        last_sync,
        reconciliations,
        reconcile_schedule,
        last_drift,
        drift,
    })
}

#[cfg(feature = "ssr")]
fn job_context(state: &crate::state::AppState) -> crate::sync::background::JobContext {
    crate::sync::background::JobContext {
        account: String::new(),
        db: state.db.clone(),
        stripe: state.stripe.clone(),
        config: state.config.clone(),
        events: state.events.clone(),
    }
}

/// Starts a job for an admin, audited; the message says what happens next.
#[cfg(feature = "ssr")]
async fn start(
    job: crate::sync::background::Job,
    action: &'static str,
    started: &str,
) -> Result<String, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    use crate::state::AppState;
    use crate::sync::background::{self, JobError};

    let me = require_role(Role::Admin)?;
    let state = AppState::from_context()?;
    if state.config.stripe_key.is_none() {
        return Err(ServerFnError::new(
            "Stripe is not configured: set STRIPE_SECRET_KEY and restart Tally.",
        ));
    }
    let detail = format!("{job:?}");
    let result = background::spawn(job_context(&state), job, me.email.clone()).await;
    let outcome = if result.is_ok() { "success" } else { "refused" };
    super::audit_action(&state.db, &me, action, None, outcome, Some(detail)).await;
    match result {
        Ok(()) => Ok(started.to_string()),
        Err(JobError::AlreadyRunning(_)) => Err(ServerFnError::new(
            "A run of this kind is already in progress; its progress is shown below.",
        )),
        Err(e) => Err(super::internal("starting a job failed", e)),
    }
}

/// Starts (or resumes) a backfill. `types`: comma-separated, empty for all; `since`: YYYY-MM-DD.
#[server(endpoint = "stripe-sync/start")]
pub async fn start_sync(
    since: Option<String>,
    types: Option<String>,
    restart: Option<String>,
) -> Result<String, ServerFnError> {
    use crate::sync::{parse_resource, SyncOptions};

    let since = super::parse_day(since, "since")?;
    let mut only = Vec::new();
    for name in types
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        only.push(parse_resource(name).ok_or_else(|| ServerFnError::new(format!("Unknown type {name:?}.")))?);
    }
    let options = SyncOptions {
        since,
        only,
        restart: restart.is_some_and(|r| !r.is_empty() && r != "false"),
        account: crate::domain::accounts::ENVIRONMENT.to_string(),
    };
    start(
        crate::sync::background::Job::Sync(options),
        "stripe.sync",
        "The sync has started; progress appears below.",
    )
    .await
}

#[server(endpoint = "stripe-sync/reconcile")]
pub async fn start_reconcile(days: Option<u32>) -> Result<String, ServerFnError> {
    let state = crate::state::AppState::from_context()?;
    let days = days.unwrap_or(state.config.reconcile.days);
    if !(1..=30).contains(&days) {
        return Err(ServerFnError::new(
            "Days must be from 1 to 30: Stripe keeps events for 30 days.",
        ));
    }
    start(
        crate::sync::background::Job::Reconcile { days },
        "stripe.reconcile",
        "Reconciliation has started; missing events are applied as they are found.",
    )
    .await
}

#[server(endpoint = "stripe-sync/drift")]
pub async fn start_drift() -> Result<String, ServerFnError> {
    start(
        crate::sync::background::Job::Drift { only: Vec::new() },
        "stripe.drift",
        "The drift check has started; its report appears below when it is done.",
    )
    .await
}
