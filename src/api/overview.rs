//! The overview: KPIs and charts per currency.

use leptos::prelude::*;

use crate::domain::revenue::OverviewData;

/// `None` when there is no billing data yet (the overview then shows how to connect Stripe).
/// Cached until the projection changes, and for at most a minute (the 30-day windows move).
#[server(endpoint = "metrics/overview")]
pub async fn get_overview(
    currency: Option<String>,
    account: Option<String>,
) -> Result<Option<OverviewData>, ServerFnError> {
    use crate::db::cache::Cached;
    use crate::revenue;
    static OVERVIEW: Cached<Option<OverviewData>> = Cached::new();

    let me = crate::auth::server::require_role(crate::domain::admins::Role::Viewer)?;
    let state = crate::state::AppState::from_context()?;
    let scope = crate::auth::server::account_scope(&state.db, &me, account.as_deref()).await?;
    let now = crate::db::now_unix();
    let key = format!("overview:{}:{}", scope.cache_key(), currency.as_deref().unwrap_or(""));
    let db = state.db.clone();
    // The minute is part of the stamp: the 30-day windows move.
    let (data, as_of) = OVERVIEW
        .get_bounded(
            &state.db,
            &key,
            now / 60,
            state.config.figures_wait,
            move || async move {
                let (db, scope) = (&db, &scope);
                let (currencies, Some(currency)) = crate::revenue::pick_currency(db, scope, currency).await? else {
                    return Ok(None);
                };
                let kpis = revenue::kpis(db, scope, &currency, now).await?;
                let (mrr_months, subscribers) = revenue::monthly_series(db, scope, &currency, 24, now).await?;
                Ok::<_, crate::db::DbError>(Some(OverviewData {
                    mrr_months,
                    revenue_months: revenue::revenue_by_month(db, scope, &currency, 24, now).await?,
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
