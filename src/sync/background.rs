//! Runs backfill, reconciliation and drift checks as recorded jobs: from the CLI (in the
//! foreground), from Settings (spawned in the server) and on the reconciliation schedule.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::jobs::{self, JobKind, Trigger};
use super::{drift, reconcile, SyncError, SyncOptions};
use crate::config::Config;
use crate::db::Db;
use crate::domain::resource::Resource;
use crate::stripe::StripeApi;

/// What a job needs.
#[derive(Clone)]
pub struct JobContext {
    pub db: Db,
    /// The account the jobs act for (`''`: the environment's) and the client acting for it.
    pub account: String,
    pub stripe: Arc<dyn StripeApi>,
    pub config: Arc<Config>,
    /// Woken when reconciliation stores events, so the worker applies them at once.
    pub events: Arc<Notify>,
}

/// A job request.
#[derive(Clone, Debug)]
pub enum Job {
    Sync(SyncOptions),
    Reconcile { days: u32 },
    Drift { only: Vec<Resource> },
}

impl Job {
    pub fn kind(&self) -> JobKind {
        match self {
            Job::Sync(_) => JobKind::Sync,
            Job::Reconcile { .. } => JobKind::Reconcile,
            Job::Drift { .. } => JobKind::Drift,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{}", already_running(.0))]
    AlreadyRunning(&'static str),
    #[error(transparent)]
    Failed(#[from] SyncError),
}

impl From<crate::db::DbError> for JobError {
    fn from(e: crate::db::DbError) -> Self {
        JobError::Failed(SyncError::Db(e))
    }
}

/// What to do when a run of `kind` is in progress (its process holds the job's lock, so it is
/// alive).
fn already_running(kind: &str) -> String {
    if kind == JobKind::Sync.as_str() {
        "a sync run for this account is already in progress in a running process; wait for it to finish, \
         or stop it (Ctrl-C where it runs, or Stop on Settings → Stripe sync) and run tally sync again: it \
         resumes where that run stopped"
            .to_string()
    } else {
        format!("a {kind} run for this account is already in progress in a running process; wait for it to finish, then run it again")
    }
}

/// What a finished job found, as JSON for the `jobs` table, and whether the drift check found drift.
pub struct Outcome {
    pub summary: serde_json::Value,
    pub drift: bool,
    /// Some types were skipped (the key may not read them): the others finished.
    pub partial: bool,
}

/// Records the job, runs it to the end (beating its heartbeat), and records the outcome.
pub async fn run(ctx: &JobContext, job: Job, trigger: Trigger) -> Result<Outcome, JobError> {
    run_with(ctx, job, trigger, |_| {}).await
}

/// As `run`, calling `on_sync_page` after every backfill page (the CLI draws its progress bars).
pub async fn run_with(
    ctx: &JobContext,
    job: Job,
    trigger: Trigger,
    on_sync_page: impl FnMut(&super::Progress),
) -> Result<Outcome, JobError> {
    let kind = job.kind();
    let Some(id) = jobs::start_for(&ctx.db, kind, &ctx.account, &trigger).await? else {
        return Err(JobError::AlreadyRunning(kind.as_str()));
    };
    run_claimed(ctx, job, id, on_sync_page).await
}

/// Runs a job whose row `id` this process has already claimed with `jobs::start`.
async fn run_claimed(
    ctx: &JobContext,
    job: Job,
    id: String,
    on_sync_page: impl FnMut(&super::Progress),
) -> Result<Outcome, JobError> {
    let kind = job.kind();
    // A backfill stops when asked, from this process (a signal) or from Settings (a flag on
    // the job, looked at every two seconds).
    let stop = match &job {
        Job::Sync(options) => Some(options.stop.clone()),
        _ => None,
    };
    // A backfill's request rate against the client's limit, written with the heartbeat for the
    // Settings page (the final summary replaces it).
    let live: Arc<std::sync::Mutex<Option<serde_json::Value>>> = Default::default();
    let limit = ctx.stripe.rate_limit();
    let mut on_sync_page = {
        let live = live.clone();
        let mut inner = on_sync_page;
        move |p: &super::Progress| {
            if let Ok(mut live) = live.lock() {
                *live = Some(serde_json::json!({
                    "requests_per_sec": (p.requests_per_sec * 10.0).round() / 10.0,
                    "limit": limit,
                }));
            }
            inner(p)
        }
    };
    let heartbeat = {
        let (db, id) = (ctx.db.clone(), id.clone());
        tokio::spawn(async move {
            for tick in 1u64.. {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if let Some(stop) = &stop {
                    match jobs::stop_requested(&db, &id).await {
                        Ok(true) if !stop.requested() => {
                            tracing::info!(
                                "stop requested from Settings: the pages in flight are applied, then the sync stops"
                            );
                            stop.request();
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "could not look for a stop request"),
                    }
                }
                let summary = live.lock().ok().and_then(|mut l| l.take()).map(|v| v.to_string());
                if summary.is_some() || tick % 10 == 0 {
                    if let Err(e) = jobs::beat(&db, &id, summary.as_deref()).await {
                        tracing::warn!(error = %e, "could not record a job heartbeat");
                    }
                }
            }
        })
    };
    let result = execute(ctx, job, &mut on_sync_page).await;
    heartbeat.abort();
    match &result {
        Ok(outcome) => {
            let text = outcome.summary.to_string();
            jobs::finish(&ctx.db, &id, Ok((&text, outcome.partial))).await?;
            tracing::info!(job = kind.as_str(), summary = %text, "job finished");
        }
        Err(SyncError::Stopped) => {
            jobs::stopped(&ctx.db, &id).await?;
            tracing::info!(
                job = kind.as_str(),
                "job stopped on request; it resumes where it stopped"
            );
        }
        Err(e) => {
            let text = e.to_string();
            jobs::finish(&ctx.db, &id, Err(&text)).await?;
            tracing::warn!(job = kind.as_str(), error = %text, "job failed");
        }
    }
    result.map_err(JobError::Failed)
}

async fn execute(ctx: &JobContext, job: Job, on_sync_page: impl FnMut(&super::Progress)) -> Result<Outcome, SyncError> {
    let stripe = ctx.stripe.as_ref();
    match job {
        Job::Sync(options) => {
            // Whoever built the options, the run is for the context's account.
            let options = super::SyncOptions {
                account: ctx.account.clone(),
                ..options
            };
            let summary = super::run(&ctx.db, ctx.stripe.clone(), &options, on_sync_page).await?;
            let types: Vec<_> = summary
                .iter()
                .map(|p| {
                    serde_json::json!({"resource": p.resource.table(), "fetched": p.fetched, "applied": p.applied,
                                       "skipped": p.skipped})
                })
                .collect();
            let partial = summary.iter().any(|p| p.skipped.is_some());
            Ok(Outcome {
                summary: serde_json::json!({ "types": types, "partial": partial }),
                drift: false,
                partial,
            })
        }
        Job::Reconcile { days } => {
            let expected_livemode = ctx.config.stripe_mode().map(|m| m.is_live());
            let report = reconcile::run_for(&ctx.db, &ctx.account, stripe, days, expected_livemode, |r| {
                if r.missing > 0 {
                    ctx.events.notify_one();
                }
            })
            .await?;
            Ok(Outcome {
                summary: serde_json::to_value(&report).unwrap_or_default(),
                drift: false,
                partial: report.skipped.is_some(),
            })
        }
        Job::Drift { only } => {
            let report = drift::run_for(&ctx.db, &ctx.account, stripe, &only, |_| {}).await?;
            Ok(Outcome {
                drift: report.has_drift(),
                partial: report.partial(),
                summary: serde_json::to_value(&report).unwrap_or_default(),
            })
        }
    }
}

/// Starts a job in the background (for Settings); errors only if one of its kind is running.
/// The job's id is not returned: the page shows the latest run of each kind.
pub async fn spawn(ctx: JobContext, job: Job, admin_email: String) -> Result<(), JobError> {
    // Claim before answering, so a second click (or another instance) hears at once that a run
    // is already in progress instead of racing the spawned task.
    let kind = job.kind();
    let Some(id) = jobs::start_for(&ctx.db, kind, &ctx.account, &Trigger::Admin(admin_email)).await? else {
        return Err(JobError::AlreadyRunning(kind.as_str()));
    };
    tokio::spawn(async move {
        if let Err(e) = run_claimed(&ctx, job, id, |_| {}).await {
            tracing::warn!(error = %e, "background job did not complete");
        }
    });
    Ok(())
}

/// Reconciles on the configured schedule, forever (the server aborts it at shutdown).
pub async fn reconcile_on_schedule(ctx: JobContext) {
    let Some(every) = ctx.config.reconcile.interval else {
        return;
    };
    if ctx.config.stripe_key.is_none() {
        tracing::info!("scheduled reconciliation is off: STRIPE_SECRET_KEY is not set");
        return;
    }
    loop {
        tokio::time::sleep(every).await;
        let job = Job::Reconcile {
            days: ctx.config.reconcile.days,
        };
        match run(&ctx, job, Trigger::Schedule).await {
            Ok(_) | Err(JobError::AlreadyRunning(_)) => {}
            Err(e) => tracing::warn!(error = %e, "scheduled reconciliation failed; it runs again next time"),
        }
    }
}
