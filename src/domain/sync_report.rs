//! What the backfill, reconciliation and drift jobs report, shared by the server and the
//! Settings → Stripe sync page.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiffKind {
    /// At Stripe, not here.
    MissingHere,
    /// Here, but Stripe does not list it (deleted there, or from the other mode).
    NotAtStripe,
    /// Both have it; a field differs.
    Changed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub resource: String,
    pub id: String,
    pub kind: DiffKind,
    /// For `Changed`: the field, and both values.
    pub field: Option<String>,
    pub here: Option<String>,
    pub stripe: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeSummary {
    pub resource: String,
    pub at_stripe: i64,
    pub here: i64,
    pub missing_here: i64,
    pub not_at_stripe: i64,
    pub changed: i64,
    /// Not compared: the key may not read this type (the reason and the API path).
    #[serde(default)]
    pub skipped: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftReport {
    pub checked_at: i64,
    pub types: Vec<TypeSummary>,
    pub differences: Vec<Difference>,
    pub total_differences: i64,
}

impl DriftReport {
    pub fn has_drift(&self) -> bool {
        self.total_differences > 0
    }

    /// Some types could not be read: the report covers only the others.
    pub fn partial(&self) -> bool {
        self.types.iter().any(|t| t.skipped.is_some())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub days: u32,
    /// Events Stripe listed.
    pub listed: i64,
    /// Of those, how many the inbox lacked (now stored and queued).
    pub missing: i64,
    /// Ids of the missing events (the first 100).
    pub missing_ids: Vec<String>,
    /// Failed events of the window set to be applied again.
    #[serde(default)]
    pub retried_failed: i64,
    /// The key may not list events (the reason and the API path): nothing was reconciled.
    #[serde(default)]
    pub skipped: Option<String>,
}

/// One run, as the Settings → Stripe sync page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRun {
    pub id: String,
    pub status: String,
    pub trigger: String,
    pub requested_by: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub summary: Option<String>,
    pub error: Option<String>,
}

/// Backfill progress of one type, for the Settings → Stripe sync page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeProgress {
    pub resource: String,
    pub fetched: i64,
    pub applied: i64,
    /// List pages fetched.
    #[serde(default)]
    pub pages: i64,
    pub done: bool,
    /// Objects fetched per second since the run started.
    pub rate: i64,
    /// Rows of this type Tally already has; with a rate, an estimate of the time left.
    pub known_rows: i64,
    pub eta_secs: Option<i64>,
    pub started_at: i64,
    pub updated_at: i64,
    /// Not fetched: the key may not read this type (the reason and the API path).
    #[serde(default)]
    pub skipped: Option<String>,
}

/// Everything the page shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncPageData {
    /// The Stripe account the page is about (its name), and its `?account=` value.
    pub account_name: String,
    pub account: String,
    pub stripe_configured: bool,
    /// `https://dashboard.stripe.com/` plus `test/` in test mode, for links to objects.
    pub dashboard: String,
    /// The backfill's per-type progress (of the current or last run).
    pub types: Vec<TypeProgress>,
    pub last_sync: Option<JobRun>,
    pub reconciliations: Vec<(JobRun, Option<ReconcileReport>)>,
    /// e.g. "every 1h over the last 3 days", or "off".
    pub reconcile_schedule: String,
    pub last_drift: Option<JobRun>,
    pub drift: Option<DriftReport>,
}

impl SyncPageData {
    /// While a backfill runs: its requests to Stripe per second and the client's limit.
    pub fn request_rate(&self) -> Option<(f64, Option<u64>)> {
        let run = self.last_sync.as_ref().filter(|j| j.status == "running")?;
        let summary: serde_json::Value = serde_json::from_str(run.summary.as_deref()?).ok()?;
        Some((summary["requests_per_sec"].as_f64()?, summary["limit"].as_u64()))
    }

    /// Something is running, so the page keeps polling.
    pub fn busy(&self) -> bool {
        let running = |j: &Option<JobRun>| j.as_ref().is_some_and(|j| j.status == "running");
        running(&self.last_sync)
            || running(&self.last_drift)
            || self.reconciliations.first().is_some_and(|(j, _)| j.status == "running")
    }
}
