//! Revenue figures shared by the server and the pages. Money in minor units of `currency`; rates
//! in basis points (1/100 of a percent).

use serde::{Deserialize, Serialize};

/// The window of the overview's "30 days" figures, in seconds: `(now − WINDOW, now]`.
pub const WINDOW: i64 = 30 * 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MovementKind {
    New,
    Expansion,
    Contraction,
    Churn,
    Reactivation,
}

impl MovementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::New => "new",
            MovementKind::Expansion => "expansion",
            MovementKind::Contraction => "contraction",
            MovementKind::Churn => "churn",
            MovementKind::Reactivation => "reactivation",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            MovementKind::New,
            MovementKind::Expansion,
            MovementKind::Contraction,
            MovementKind::Churn,
            MovementKind::Reactivation,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One change of a customer's MRR, caused by one event on one subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    pub subscription_id: String,
    pub customer_id: String,
    pub at: i64,
    pub event_id: String,
    pub kind: MovementKind,
    /// The change of MRR (negative for contraction and churn).
    pub delta: i64,
    /// The subscription's MRR after the change.
    pub mrr_after: i64,
}

/// One month of a chart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthPoint {
    /// `YYYY-MM`
    pub month: String,
    /// MRR at the end of the month (or now, for the current one).
    pub mrr: i64,
    pub new: i64,
    pub expansion: i64,
    pub reactivation: i64,
    /// Negative.
    pub contraction: i64,
    /// Negative.
    pub churn: i64,
    pub gross: i64,
    pub refunds: i64,
    pub disputes_lost: i64,
    pub net: i64,
    pub payments: i64,
    pub failed_payments: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kpis {
    pub currency: String,
    pub mrr: i64,
    pub arr: i64,
    pub active_subscriptions: i64,
    pub active_customers: i64,
    pub new_mrr_this_month: i64,
    /// MRR lost to churn in the last 30 days (positive).
    pub churned_mrr_30d: i64,
    /// MRR lost to downgrades in the last 30 days (positive).
    pub contraction_mrr_30d: i64,
    pub expansion_mrr_30d: i64,
    pub churned_customers_30d: i64,
    pub customers_30d_ago: i64,
    pub mrr_30d_ago: i64,
    /// Churned customers ÷ paying customers 30 days ago.
    pub customer_churn_bp: Option<i64>,
    /// (Churned + contraction MRR) ÷ MRR 30 days ago.
    pub revenue_churn_bp: Option<i64>,
    /// MRR ÷ active customers.
    pub arpu: i64,
    /// ARPU ÷ monthly customer churn rate; `None` without churn.
    pub ltv: Option<i64>,
    pub gross_30d: i64,
    pub refunds_30d: i64,
    pub disputes_lost_30d: i64,
    pub net_revenue_30d: i64,
    /// Net revenue of the 30 days before those (the overview's change).
    #[serde(default)]
    pub net_revenue_prev_30d: i64,
    /// Churned MRR of the 30 days before those.
    #[serde(default)]
    pub churned_mrr_prev_30d: i64,
    /// Active subscriptions 30 days ago.
    #[serde(default)]
    pub subscriptions_30d_ago: i64,
    pub failed_payments_30d: i64,
    /// Open invoices whose payment failed.
    pub open_failed_invoices: i64,
    pub open_failed_amount: i64,
    pub trials: i64,
    pub trials_ended_30d: i64,
    pub trials_converted_30d: i64,
    pub trial_conversion_bp: Option<i64>,
}

/// The first second (UTC) of a `YYYY-MM` month and of the month after it.
pub fn month_span(label: &str) -> Option<(i64, i64)> {
    use chrono::{Datelike, NaiveDate};
    let start = NaiveDate::parse_from_str(&format!("{label}-01"), "%Y-%m-%d").ok()?;
    let next = if start.month() == 12 {
        NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)?
    };
    let second = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
    Some((second(start)?, second(next)?))
}

/// A whole percent from basis points, as a chart's axis shows it: `12%`.
pub fn percent_whole(bp: i64, _: &str) -> String {
    format!("{}%", bp / 100)
}

/// `12.34%` from basis points.
pub fn percent(bp: Option<i64>) -> String {
    match bp {
        Some(bp) => format!("{}.{:02}%", bp / 100, bp % 100),
        None => "—".into(),
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverviewData {
    /// Currencies with data, the main one first.
    pub currencies: Vec<String>,
    pub currency: String,
    pub kpis: Kpis,
    /// The last 24 months: MRR at month end and the month's movements.
    pub mrr_months: Vec<MonthPoint>,
    /// The last 24 months: gross, refunds, net, payments, failed payments.
    pub revenue_months: Vec<MonthPoint>,
    /// The last 24 months: active subscribers at month end.
    pub subscribers: Vec<(String, i64)>,
    pub now: i64,
    /// Set when these are the previous figures (from this time) while new ones are computed.
    pub as_of: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovementList {
    pub currencies: Vec<String>,
    pub currency: String,
    pub movements: Vec<MovementRow>,
    /// The net change of every matching movement (not only those shown).
    pub total: i64,
    /// How many movements match (churn movements: one per churned customer).
    pub count: i64,
    /// The net change of the movements on this page.
    pub shown_total: i64,
    /// `after` for the next page.
    pub next: Option<String>,
    /// The matching movements per month and kind, the last 24 months (the roll-up chart).
    pub months: Vec<MonthPoint>,
    /// Set when this is the previous list (from this time) while a new one is computed.
    pub as_of: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovementRow {
    pub movement: Movement,
    pub customer_label: String,
}

/// Movements on the Revenue page.
#[cfg(feature = "ssr")]
pub const MOVEMENTS_PAGE: i64 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_spans_cover_the_month() {
        assert_eq!(month_span("2026-01"), Some((1_767_225_600, 1_769_904_000)));
        assert_eq!(month_span("2025-12").map(|s| s.1), Some(1_767_225_600));
        assert_eq!(month_span("2026-13"), None);
        assert_eq!(month_span("----"), None);
    }
}
