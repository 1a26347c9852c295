//! The overview's KPIs and charts, and the Revenue page's movements.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::domain::metrics::{Kpis, MonthPoint, Movement};

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

#[cfg(feature = "ssr")]
async fn pick_currency(
    db: &crate::db::Db,
    requested: Option<String>,
) -> Result<(Vec<String>, Option<String>), crate::db::DbError> {
    let currencies = crate::revenue::currencies(db).await?;
    let wanted = requested
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| currencies.contains(c));
    let currency = wanted.or_else(|| currencies.first().cloned());
    Ok((currencies, currency))
}

/// `None` when there is no billing data yet (the overview then shows how to connect Stripe).
/// Cached until the projection changes, and for at most a minute (the 30-day windows move).
#[server(endpoint = "metrics/overview")]
pub async fn get_overview(currency: Option<String>) -> Result<Option<OverviewData>, ServerFnError> {
    use crate::db::cache::Cached;
    use crate::revenue;
    static OVERVIEW: Cached<Option<OverviewData>> = Cached::new();

    crate::auth::server::require_role(crate::domain::admins::Role::Viewer)?;
    let state = crate::state::AppState::from_context()?;
    let now = crate::db::now_unix();
    let key = format!("overview:{}", currency.as_deref().unwrap_or(""));
    let db = state.db.clone();
    // The minute is part of the stamp: the 30-day windows move.
    let (data, as_of) = OVERVIEW
        .get_bounded(
            &state.db,
            &key,
            now / 60,
            state.config.figures_wait,
            move || async move {
                let db = &db;
                let (currencies, Some(currency)) = pick_currency(db, currency).await? else {
                    return Ok(None);
                };
                let kpis = revenue::kpis(db, &currency, now).await?;
                let (mrr_months, subscribers) = revenue::monthly_series(db, &currency, 24, now).await?;
                Ok::<_, crate::db::DbError>(Some(OverviewData {
                    mrr_months,
                    revenue_months: revenue::revenue_by_month(db, &currency, 24, now).await?,
                    subscribers,
                    currencies,
                    currency,
                    kpis,
                    now,
                    as_of: None,
                }))
            },
        )
        .await
        .map_err(|e| super::internal("computing the overview failed", e))?;
    Ok(data.as_ref().clone().map(|d| OverviewData { as_of, ..d }))
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

/// MRR movements, newest first, filtered by kinds (comma-separated), month (`YYYY-MM`) and a
/// window (`since` excluded, `through` included, Unix seconds); at most 500.
#[server(endpoint = "metrics/movements")]
pub async fn list_movements(
    currency: Option<String>,
    kind: Option<String>,
    month: Option<String>,
    since: Option<String>,
    through: Option<String>,
    after: Option<String>,
) -> Result<MovementList, ServerFnError> {
    use crate::db::cache::Cached;
    static MOVEMENTS: Cached<MovementList> = Cached::new();

    crate::auth::server::require_role(crate::domain::admins::Role::Viewer)?;
    let state = crate::state::AppState::from_context()?;
    let kind = kind.filter(|k| !k.is_empty());
    let month = month.filter(|m| !m.is_empty());
    let seconds = |v: Option<String>, what: &str| -> Result<Option<i64>, ServerFnError> {
        match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ServerFnError::new(format!("{what} must be a time in Unix seconds, like 1767225600."))),
        }
    };
    let filter = crate::revenue::movements::Filter {
        kind,
        month,
        since: seconds(since, "since")?,
        through: seconds(through, "through")?,
    };
    // The page's cursor: the last shown movement's time, event and subscription.
    let cursor = match after.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => {
            let mut parts = a.splitn(3, ':');
            let at = parts.next().and_then(|t| t.parse::<i64>().ok());
            match (at, parts.next(), parts.next()) {
                (Some(at), Some(event), Some(sub)) => Some((at, event.to_string(), sub.to_string())),
                _ => {
                    return Err(ServerFnError::new(
                        "The page link is broken; start again from the first page.",
                    ))
                }
            }
        }
    };
    let key = format!("movements:{currency:?}:{filter:?}:{cursor:?}");
    let db = state.db.clone();
    let now = crate::db::now_unix();
    let (list, as_of) = MOVEMENTS
        .get_bounded(
            &state.db,
            &key,
            now / 60,
            state.config.figures_wait,
            move || async move { movement_list(&db, currency, filter, cursor, now).await },
        )
        .await
        .map_err(|e| super::internal("listing movements failed", e))?;
    Ok(MovementList {
        as_of,
        ..list.as_ref().clone()
    })
}

/// Movements on the Revenue page.
#[cfg(feature = "ssr")]
pub const MOVEMENTS_PAGE: i64 = 100;

#[cfg(feature = "ssr")]
async fn movement_list(
    db: &crate::db::Db,
    currency: Option<String>,
    filter: crate::revenue::movements::Filter,
    cursor: Option<crate::revenue::movements::Cursor>,
    now: i64,
) -> Result<MovementList, crate::db::DbError> {
    use std::collections::HashMap;

    use sqlx::Row;

    let (currencies, Some(currency)) = pick_currency(db, currency).await? else {
        return Ok(MovementList::default());
    };
    // The newest 500 only: the whole history can be hundreds of thousands of movements.
    use crate::revenue::movements;
    let sums = movements::sums(db, &currency, &filter).await?;
    let mut selected = movements::page_after(db, &currency, &filter, cursor.as_ref(), MOVEMENTS_PAGE + 1).await?;
    let next = (selected.len() as i64 > MOVEMENTS_PAGE).then(|| {
        selected.truncate(MOVEMENTS_PAGE as usize);
        selected
            .last()
            .map(|m| format!("{}:{}:{}", m.at, m.event_id, m.subscription_id))
            .unwrap_or_default()
    });
    let shown_total = selected.iter().map(|m| m.delta).sum();
    // The roll-up: the last 24 months, each kind.
    let first = crate::domain::calendar::month_number(now) - 23;
    let mut months: Vec<MonthPoint> = (0..24)
        .map(|i| MonthPoint {
            month: format!(
                "{:04}-{:02}",
                (first + i).div_euclid(12),
                (first + i).rem_euclid(12) + 1
            ),
            ..Default::default()
        })
        .collect();
    for (month, kind, delta) in movements::monthly(db, &currency, &filter, first).await? {
        let Some(p) = usize::try_from(month - first).ok().and_then(|i| months.get_mut(i)) else {
            continue;
        };
        use crate::domain::metrics::MovementKind as K;
        match kind {
            K::New => p.new += delta,
            K::Expansion => p.expansion += delta,
            K::Reactivation => p.reactivation += delta,
            K::Contraction => p.contraction += delta,
            K::Churn => p.churn += delta,
        }
    }
    // Customers' names in one query.
    let ids: Vec<&str> = selected.iter().map(|m| m.customer_id.as_str()).collect();
    let mut labels: HashMap<String, String> = HashMap::new();
    for chunk in ids.chunks(200) {
        if chunk.is_empty() {
            continue;
        }
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, COALESCE(name, email, id) AS label FROM customers WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(db.reader()).await? {
            labels.insert(
                r.try_get("id").unwrap_or_default(),
                r.try_get("label").unwrap_or_default(),
            );
        }
    }
    Ok(MovementList {
        currencies,
        currency,
        movements: selected
            .into_iter()
            .map(|m| MovementRow {
                customer_label: labels
                    .get(&m.customer_id)
                    .cloned()
                    .unwrap_or_else(|| m.customer_id.clone()),
                movement: m,
            })
            .collect(),
        total: sums.delta,
        count: sums.movements,
        shown_total,
        next,
        months,
        as_of: None,
    })
}
