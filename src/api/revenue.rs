//! The Revenue page: MRR movements, filtered and paged, with their monthly roll-up.

use leptos::prelude::*;

use crate::domain::revenue::MovementList;

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
    account: Option<String>,
) -> Result<MovementList, ServerFnError> {
    use crate::db::cache::Cached;
    static MOVEMENTS: Cached<MovementList> = Cached::new();

    let me = crate::auth::server::require_role(crate::domain::admins::Role::Viewer)?;
    let state = crate::state::AppState::from_context()?;
    let scope = crate::auth::server::account_scope(&state.db, &me, account.as_deref()).await?;
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
        scope,
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

    let (currencies, Some(currency)) = crate::revenue::pick_currency(db, &filter.scope, currency).await? else {
        return Ok(MovementList::default());
    };
    // The newest 500 only: the whole history can be hundreds of thousands of movements.
    use crate::revenue::movements;
    let sums = movements::sums(db, &currency, &filter).await?;
    let mut selected = movements::page_after(
        db,
        &currency,
        &filter,
        cursor.as_ref(),
        crate::domain::revenue::MOVEMENTS_PAGE + 1,
    )
    .await?;
    let next = (selected.len() as i64 > crate::domain::revenue::MOVEMENTS_PAGE).then(|| {
        selected.truncate(crate::domain::revenue::MOVEMENTS_PAGE as usize);
        selected
            .last()
            .map(|m| format!("{}:{}:{}", m.at, m.event_id, m.subscription_id))
            .unwrap_or_default()
    });
    let shown_total = selected.iter().map(|m| m.delta).sum();
    // The roll-up: the last 24 months, each kind.
    let first = crate::domain::calendar::month_number(now) - 23;
    let mut months: Vec<crate::domain::revenue::MonthPoint> = (0..24)
        .map(|i| crate::domain::revenue::MonthPoint {
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
        use crate::domain::revenue::MovementKind as K;
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
            .map(|m| crate::domain::revenue::MovementRow {
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
