//! Settings → Stripe sync: backfill with live progress, reconciliation and the drift report.

use leptos::prelude::*;

use crate::domain::sync_report::SyncPageData;

/// The one account a sync page or job is for: the one `?account=` picks, else the environment's
/// (or, for an admin limited to other accounts, the first of theirs). Its storage key, its
/// `?account=` value and its name.
#[cfg(feature = "ssr")]
async fn one_account(
    state: &crate::state::AppState,
    me: &crate::domain::admins::CurrentAdmin,
    account: Option<&str>,
) -> Result<(String, String, String), ServerFnError> {
    use crate::domain::accounts::{Scope, ENVIRONMENT, ENVIRONMENT_PARAM};
    let scope = crate::auth::server::account_scope(&state.db, me, account).await?;
    let key = match &scope {
        Scope::Only(keys) if !scope.covers(ENVIRONMENT) => keys.first().cloned().unwrap_or_default(),
        _ => ENVIRONMENT.to_string(),
    };
    let failed = |e| super::internal("reading the Stripe accounts failed", e);
    if key == ENVIRONMENT {
        let id = crate::db::accounts::environment_id(&state.db).await.map_err(failed)?;
        let name = match &id {
            Some(id) => crate::db::accounts::get(&state.db, id)
                .await
                .map_err(failed)?
                .map(|a| a.name)
                .unwrap_or_else(|| id.clone()),
            None => "the main account".to_string(),
        };
        return Ok((key, id.unwrap_or_else(|| ENVIRONMENT_PARAM.to_string()), name));
    }
    let name = crate::db::accounts::get(&state.db, &key)
        .await
        .map_err(failed)?
        .map(|a| a.name)
        .unwrap_or_else(|| key.clone());
    Ok((key.clone(), key, name))
}

#[server(endpoint = "stripe-sync/overview")]
pub async fn sync_overview(account: Option<String>) -> Result<SyncPageData, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    use crate::state::AppState;
    use crate::sync::jobs::{self, JobKind};

    let me = require_role(Role::Viewer)?;
    let state = AppState::from_context()?;
    let db = &state.db;
    let (key, param, name) = one_account(&state, &me, account.as_deref()).await?;
    let failed = |e: crate::db::DbError| super::internal("reading the sync state failed", e);
    // A run whose process was killed shows as failed at once, not as running forever.
    jobs::reap_all_dead(db, &key).await.map_err(failed)?;
    // The run's status before its progress: a run read as finished has every page committed,
    // so the progress read after it is complete (the other order could pair "done" with the
    // progress of a moment before the last page).
    let last_sync = jobs::latest_for(db, JobKind::Sync, &key, 1)
        .await
        .map_err(failed)?
        .pop();
    let types = crate::sync::status_of(db, &key)
        .await
        .map_err(|e| super::internal("reading the sync state failed", e))?;
    let reconciliations = jobs::latest_for(db, JobKind::Reconcile, &key, 5)
        .await
        .map_err(failed)?
        .into_iter()
        .map(|run| {
            let report = run.summary.as_deref().and_then(|s| serde_json::from_str(s).ok());
            (run, report)
        })
        .collect();
    let last_drift = jobs::latest_for(db, JobKind::Drift, &key, 1)
        .await
        .map_err(failed)?
        .pop();
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
    // Another account is reached with its own key, or its platform's.
    let reachable = if key.is_empty() {
        state.config.stripe_key.is_some()
    } else {
        crate::accounts::client(db, &state.config, &key).await.is_ok()
    };
    Ok(SyncPageData {
        account_name: name,
        account: param,
        stripe_configured: reachable,
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

/// The jobs' context for account `key`: the environment's client, or the account's own.
#[cfg(feature = "ssr")]
async fn job_context(
    state: &crate::state::AppState,
    key: &str,
) -> Result<crate::sync::background::JobContext, ServerFnError> {
    let stripe: std::sync::Arc<dyn crate::stripe::StripeApi> = if key.is_empty() {
        if state.config.stripe_key.is_none() {
            return Err(ServerFnError::new(
                "Stripe is not configured: set STRIPE_SECRET_KEY and restart Tally.",
            ));
        }
        state.stripe.clone()
    } else {
        crate::accounts::client(&state.db, &state.config, key)
            .await
            .map_err(super::client_error)?
    };
    Ok(crate::sync::background::JobContext {
        account: key.to_string(),
        db: state.db.clone(),
        stripe,
        config: state.config.clone(),
        events: state.events.clone(),
    })
}

/// Starts a job for an admin, audited; the message says what happens next.
#[cfg(feature = "ssr")]
async fn start(
    job: crate::sync::background::Job,
    action: &'static str,
    started: &str,
    account: Option<String>,
) -> Result<String, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    use crate::state::AppState;
    use crate::sync::background::{self, JobError};

    let me = require_role(Role::Admin)?;
    let state = AppState::from_context()?;
    let (key, param, _) = one_account(&state, &me, account.as_deref()).await?;
    let ctx = job_context(&state, &key).await?;
    let detail = format!("{job:?} · account {param}");
    let result = background::spawn(ctx, job, me.email.clone()).await;
    let outcome = if result.is_ok() { "success" } else { "refused" };
    super::audit_action(&state.db, &me, action, None, outcome, Some(detail)).await;
    match result {
        Ok(()) => Ok(started.to_string()),
        Err(JobError::AlreadyRunning("sync")) => Err(ServerFnError::new(
            "A backfill is already running (its progress is shown below): wait for it, or press Stop and then Sync \
             from Stripe to resume where it stopped.",
        )),
        Err(JobError::AlreadyRunning(_)) => Err(ServerFnError::new(
            "A run of this kind is already in progress (shown below): wait for it to finish, then start it again.",
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
    account: Option<String>,
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
        // The job runs for its context's account (background::execute sets it).
        ..Default::default()
    };
    start(
        crate::sync::background::Job::Sync(options),
        "stripe.sync",
        "The sync has started; progress appears below.",
        account,
    )
    .await
}

/// Asks the running backfill to stop, wherever it runs (this server, another instance, or
/// `tally sync` in a terminal): the pages in flight are applied and their progress kept, and
/// Sync from Stripe resumes it.
#[server(endpoint = "stripe-sync/stop")]
pub async fn stop_sync(account: Option<String>) -> Result<String, ServerFnError> {
    use crate::auth::server::require_role;
    use crate::domain::admins::Role;
    use crate::state::AppState;
    use crate::sync::jobs::{self, JobKind};

    let me = require_role(Role::Admin)?;
    let state = AppState::from_context()?;
    let (key, param, _) = one_account(&state, &me, account.as_deref()).await?;
    let asked = jobs::request_stop(&state.db, JobKind::Sync, &key)
        .await
        .map_err(|e| super::internal("asking the backfill to stop failed", e))?;
    let outcome = if asked { "success" } else { "refused" };
    super::audit_action(
        &state.db,
        &me,
        "stripe.sync.stop",
        None,
        outcome,
        Some(format!("account {param}")),
    )
    .await;
    if asked {
        Ok(
            "Stopping: the pages being fetched are applied, then the backfill stops (within a few seconds). \
            Sync from Stripe resumes it where it stopped."
                .to_string(),
        )
    } else {
        Err(ServerFnError::new("No backfill is running for this account."))
    }
}

#[server(endpoint = "stripe-sync/reconcile")]
pub async fn start_reconcile(days: Option<u32>, account: Option<String>) -> Result<String, ServerFnError> {
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
        account,
    )
    .await
}

#[server(endpoint = "stripe-sync/drift")]
pub async fn start_drift(account: Option<String>) -> Result<String, ServerFnError> {
    start(
        crate::sync::background::Job::Drift { only: Vec::new() },
        "stripe.drift",
        "The drift check has started; its report appears below when it is done.",
        account,
    )
    .await
}
